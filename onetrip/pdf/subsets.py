"""Faster TrueType font subsets: the same file ReportLab's `makeSubset` writes, for less.

ReportLab's `makeSubset` re-reads every glyph of a subset from the font file for each
document (seek, unpack, composite parsing), then builds the subset's tables glyph by
glyph in Python. A glyph's bytes and where its component references sit depend only on
the font, so `make_subset` remembers them per face (the glyphs used so far: at most the
font's glyf table) with the face's advances and left bearings as compact arrays, and
assembles the tables from them with list-at-once operations (`map`, `accumulate`,
`join`): a licence's subset (~200 characters, ~310 glyphs of which ~60 composite) in a
fifth of the instructions. Same glyph order, same tables, same bytes; a subset with a
glyph it does not parse the same way goes back to ReportLab's own code.

A subset made once is remembered too (a few per face, `MADE_PER_FACE`): documents that
reserve the same characters first (`onetrip.pdf.fonts.reserve_characters`, e.g. a
licence template's labels) share their first subset's file, made and compressed once
(`SubsetFile`).

Installed on `TTFontFace` by `onetrip.pdf.fonts`: receipts and every other document get
it too.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat, takewhile
from operator import add, rshift
from typing import Any

from reportlab.lib.rl_accel import add32, calcChecksum
from reportlab.pdfbase import ttfonts

_reportlab_make_subset = ttfonts.TTFontFace.makeSubset
_COMPONENT_ARGS = (
    (ttfonts.GF_WE_HAVE_A_SCALE, 2),
    (ttfonts.GF_WE_HAVE_AN_X_AND_Y_SCALE, 4),
    (ttfonts.GF_WE_HAVE_A_TWO_BY_TWO, 8),
)
#: where a face keeps its `_FaceTables` (in its __dict__: one per face, built once)
_CACHE = "_onetrip_subset_cache"


@dataclass
class _FaceTables:
    """What every subset of one face copies from it, read once."""

    #: copied as they are (name, OS/2, cvt, fpgm, prep, post): (bytes, checksum)
    tables: dict[str, tuple[bytes, int]]
    glyf: memoryview  # the face's glyf table, a view of the file's bytes
    head: bytes
    hhea: bytes
    maxp: bytes
    #: a glyph's bytes padded to 4 (as they sit in a subset, before renumbering)
    data: dict[int, bytes] = field(default_factory=dict)
    #: the TrueType checksum of each glyph's `data` (a table's checksum is their sum)
    checksums: dict[int, int] = field(default_factory=dict)
    #: a composite glyph's component references: ((offset in its bytes, glyph), ...);
    #: written before `data`, so a glyph in `data` is known to be composite or not
    components: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    #: a glyph's hmtx entry (advance and left bearing), and its left bearing alone (a
    #: glyph in the trailing run of equal advances); written before `data` too
    metrics: dict[int, bytes] = field(default_factory=dict)
    bearings: dict[int, bytes] = field(default_factory=dict)
    advances: dict[int, int] = field(default_factory=dict)  # as hmtx writes them
    #: the subsets made so far, by their codes' characters (at most MADE_PER_FACE)
    made: dict[tuple[int, ...], SubsetFile] = field(default_factory=dict)


class SubsetFile(bytes):
    """A subset's TrueType file as `make_subset` remembers it: the same object for the
    same subset, so the PDF stream filter may remember its compressed form
    (`onetrip.pdf._flate_fast`) without hashing any other stream it compresses."""


#: subsets remembered per face: a template's shared subset, and room for a few templates
MADE_PER_FACE = 16


def _face_tables(face: ttfonts.TTFontFace) -> _FaceTables:
    cached = face.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    tables = {}
    for tag in ("name", "OS/2", "cvt ", "fpgm", "prep"):
        with contextlib.suppress(KeyError):  # cvt, fpgm and prep are optional
            tables[tag] = bytes(face.get_table(tag))
    tables["post"] = b"\x00\x03\x00\x00" + face.get_table("post")[4:16] + b"\x00" * 16
    start, length = face.get_table_pos("glyf")
    # Two threads building it at once build the same thing; the last one is kept.
    cached = _FaceTables(
        tables={tag: (table, calcChecksum(table)) for tag, table in tables.items()},
        glyf=memoryview(face._ttf_data)[start : start + length],  # a view, not a copy
        head=bytes(face.get_table("head")),
        hhea=bytes(face.get_table("hhea")),
        maxp=bytes(face.get_table("maxp")),
    )
    face.__dict__[_CACHE] = cached
    return cached


def _load_glyph(face: ttfonts.TTFontFace, cache: _FaceTables, glyph: int) -> bool:
    """Read a glyph into the cache; False for one ReportLab reads differently (a glyph
    of one or two bytes), which only ReportLab's own code should subset."""
    if glyph in cache.data:
        return True
    positions = face.glyphPos
    data = bytes(cache.glyf[positions[glyph] : positions[glyph + 1]])
    if 0 < len(data) <= 2:
        return False
    if data and struct.unpack_from(">h", data)[0] < 0:  # composite
        components = []
        pos = 10
        flags = ttfonts.GF_MORE_COMPONENTS
        while flags & ttfonts.GF_MORE_COMPONENTS:
            flags, component = struct.unpack_from(">HH", data, pos)
            components.append((pos + 2, component))
            pos += 8 if flags & ttfonts.GF_ARG_1_AND_2_ARE_WORDS else 6
            for flag, size in _COMPONENT_ARGS:
                if flags & flag:
                    pos += size
                    break
        cache.components[glyph] = tuple(components)
    # int(): past the font's numberOfHMetrics ReportLab keeps the last advance scaled
    # to 1000 units, a float, and its makeSubset writes int() of that
    advance, bearing = (int(value) for value in face.hmetrics[glyph])
    cache.advances[glyph] = advance
    cache.metrics[glyph] = struct.pack(">HH", advance, bearing)
    cache.bearings[glyph] = struct.pack(">H", bearing)
    data += b"\0" * (-len(data) % 4)
    cache.checksums[glyph] = calcChecksum(data)
    cache.data[glyph] = data
    return True


def make_subset(face: ttfonts.TTFontFace, subset: Sequence[int]) -> bytes:
    """`face.makeSubset(subset)`, ReportLab's bytes: the TrueType file of the glyphs of
    `subset`'s characters (and their components), the i-th code as glyph code i."""
    made = _face_tables(face).made
    key = tuple(subset)
    file = made.pop(key, None)  # put back last: the least recently used goes first
    if file is None:
        file = SubsetFile(_make_subset(face, subset))
    made[key] = file
    forget_oldest(made, MADE_PER_FACE)
    return file


def forget_oldest(remembered: dict[Any, Any], bound: int) -> None:
    """Drop the entries put in longest ago until at most `bound` are left: with each hit
    put back last, the least recently used. A document's own subset (a holder's
    characters) never comes back, and so never pushes out a shared one that does.
    Threads may race here; each loses at most an entry another put back."""
    while len(remembered) > bound:
        try:
            del remembered[next(iter(remembered))]
        except (KeyError, RuntimeError, StopIteration):  # another thread changed it
            break


def _make_subset(face: ttfonts.TTFontFace, subset: Sequence[int]) -> bytes:
    cache = _face_tables(face)
    char_to_glyph = face.charToGlyph
    originals = [char_to_glyph.get(code, 0) for code in subset]  # 0: .notdef
    glyph_map = list(dict.fromkeys([0, *originals]))  # new glyph index -> old glyph index
    glyph_set = dict(zip(glyph_map, range(len(glyph_map)), strict=True))  # old -> new
    data, components = cache.data, cache.components
    if not data.keys() >= glyph_set.keys():
        for glyph in glyph_set.keys() - data.keys():
            if not _load_glyph(face, cache, glyph):
                return _reportlab_make_subset(face, subset)
    # The glyphs composite glyphs are made of follow, in the order ReportLab finds
    # them: each composite's new components in turn, then those components' own.
    composites = list(filter(components.__contains__, glyph_map))
    for glyph in composites:  # grows while it is walked
        for _, component in components[glyph]:
            if component not in glyph_set:
                glyph_set[component] = len(glyph_map)
                glyph_map.append(component)
                if component not in data and not _load_glyph(face, cache, component):
                    return _reportlab_make_subset(face, subset)
                if component in components:
                    composites.append(component)

    tables = dict(cache.tables)
    glyph_count = len(glyph_map)
    # A trailing run of equal advances keeps only its first advance: the rest of the
    # run is left bearings alone.
    advances = map(cache.advances.__getitem__, reversed(glyph_map))
    run = len(list(takewhile(cache.advances[glyph_map[-1]].__eq__, advances)))
    full = max(glyph_count - run + 1, 1)
    hmtx = b"".join(map(cache.metrics.__getitem__, glyph_map[:full]))
    hmtx += b"".join(map(cache.bearings.__getitem__, glyph_map[full:]))
    tables["hmtx"] = _table(hmtx)
    tables["hhea"] = _table(ttfonts._set_ushort(cache.hhea, 34, full))
    tables["maxp"] = _table(ttfonts._set_ushort(cache.maxp, 4, glyph_count))
    codes = map(glyph_set.__getitem__, originals)
    cmap = struct.pack(
        f">{11 + len(subset)}H",
        0,
        1,
        1,
        0,
        0,
        12,
        6,
        10 + len(subset) * 2,
        0,
        0,
        len(subset),
        *codes,
    )
    tables["cmap"] = _table(cmap)

    glyphs = list(map(data.__getitem__, glyph_map))
    checksum = sum(map(cache.checksums.__getitem__, glyph_map))
    for glyph in composites:  # component references renumbered to the subset's glyphs
        patched = bytearray(data[glyph])
        for offset, component in components[glyph]:
            new = glyph_set[component]
            struct.pack_into(">H", patched, offset, new)
            # the word holding it changes by the difference, in its high or low half
            checksum += (new - component) << (16 if offset % 4 == 0 else 0)
        glyphs[glyph_set[glyph]] = bytes(patched)
    offsets = list(accumulate(map(len, glyphs), initial=0))
    tables["glyf"] = (b"".join(glyphs), checksum & 0xFFFFFFFF)
    if offsets[-1] >> 1 > 0xFFFF:  # offsets are multiples of 4: ReportLab's (pos + 1) >> 1
        long_loca = 1
        loca = struct.pack(f">{len(offsets)}L", *offsets)
    else:
        long_loca = 0
        loca = struct.pack(f">{len(offsets)}H", *map(rshift, offsets, repeat(1)))
    tables["loca"] = _table(loca)
    # the file's checksum goes into head's checkSumAdjustment; it is summed as zeros
    head = ttfonts._set_ushort(cache.head, 50, long_loca)
    tables["head"] = _table(head[:8] + b"\0\0\0\0" + head[12:])
    return _font_file(tables)


def _table(data: bytes) -> tuple[bytes, int]:
    return data, calcChecksum(data)


def _font_file(tables: dict[str, tuple[bytes, int]]) -> bytes:
    """The TrueType file of `tables` as ReportLab's `TTFontMaker.makeStream` writes it,
    from the tables' checksums already known (the file's is their sum, and its header's)."""
    count = len(tables)
    search_range, entry_selector = 1, 0
    while search_range * 2 <= count:
        search_range *= 2
        entry_selector += 1
    search_range *= 16
    directory = [
        struct.pack(
            ">lHHHH", 0x00010000, count, search_range, entry_selector, count * 16 - search_range
        )
    ]
    offset = 12 + count * 16
    parts = []
    checksum = 0
    head_index = 0
    for tag in sorted(tables):
        data, table_checksum = tables[tag]
        if tag == "head":
            head_index = len(parts)
        directory.append(
            tag.encode("latin1") + struct.pack(">LLL", table_checksum, offset, len(data))
        )
        padding = -len(data) % 4
        parts.append(data + b"\0" * padding if padding else data)
        offset += len(data) + padding
        checksum += table_checksum
    header = b"".join(directory)
    checksum = add32(0xB1B0AFBA, -((checksum + calcChecksum(header)) & 0xFFFFFFFF))
    head = parts[head_index]
    parts[head_index] = head[:8] + struct.pack(">L", checksum) + head[12:]
    return header + b"".join(parts)


class _HexCodes(dict[int, str]):
    """`<%04X>` of each character code asked for so far (a bounded memory: the
    characters printed are input); the text of one not remembered is made on the spot."""

    def __missing__(self, code: int) -> str:
        if len(self) >= _HEX_CODES_MAX:
            self.clear()
        text = self[code] = f"<{code:04X}>"
        return text


_HEX_CODES_MAX = 20_000
_hex_codes = _HexCodes()
_SUBSET_CODES = tuple(f"<{code:02X}> " for code in range(256))  # a subset's own codes


class SubsetText(str):
    """A subset's ToUnicode CMap as `to_unicode_cmap` remembers it: the same object for
    the same subset (a template's shared one), compressed once by the stream filter."""


#: the CMaps made lately, by (font name, subset), least recently used first
_CMAPS: dict[tuple[str, tuple[int, ...]], SubsetText] = {}
_CMAPS_MAX = 32


def to_unicode_cmap(fontname: str, subset: Sequence[int]) -> str:
    """`ttfonts.makeToUnicodeCMap(fontname, subset)`, ReportLab's text: the ToUnicode
    CMap of a subset, its codes' lines made from remembered pieces instead of one
    `%`-format each; the CMap of a subset made lately, the same `SubsetText` again."""
    if len(subset) > len(_SUBSET_CODES):  # not a subset ReportLab writes
        return _reportlab_to_unicode_cmap(fontname, subset)
    key = (fontname, tuple(subset))
    cmap = _CMAPS.pop(key, None)
    if cmap is None:
        cmap = SubsetText(_make_cmap(fontname, subset))
    _CMAPS[key] = cmap  # last: the least recently used is forgotten first
    forget_oldest(_CMAPS, _CMAPS_MAX)
    return cmap


def _make_cmap(fontname: str, subset: Sequence[int]) -> str:
    lines = map(add, _SUBSET_CODES, map(_hex_codes.__getitem__, subset))
    return "\n".join(
        (
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *lines,
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        )
    )


_reportlab_to_unicode_cmap = getattr(
    ttfonts.makeToUnicodeCMap, "__wrapped__", ttfonts.makeToUnicodeCMap
)
