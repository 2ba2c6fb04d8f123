"""The Chinese font every document draws with: found, registered and embedded once.

A document that must print anywhere needs its Chinese font *embedded*, so we look for a
TrueType CJK font (the configured path, then Debian's packages) and only fall back to
ReportLab's CID font STSong-Light, which is not embedded and shows as blank text in
viewers without the Adobe Asian font pack.

No one font has every Chinese character: people's names use characters of the CJK
Extensions (䶮, 𠀀, 𪚥) that the usual fonts lack, and that would print as a blank. So a
TrueType font comes with a *chain* of fallback fonts (`ONETRIP_CJK_FALLBACK_FONTS`, by
default the other Debian CJK fonts and fonts-hanazono), and `font_runs` splits a string
into runs, each drawn in the first font of the chain whose cmap has its characters. The
choice is remembered per character, fallback fonts are read only when a character first
needs them, and a character no font has is logged once.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

from onetrip.pdf.subsets import forget_oldest, make_subset, to_unicode_cmap
from onetrip.settings import get_settings

log = logging.getLogger(__name__)

# Debian packages with TrueType (not CFF) outlines that ReportLab can embed, best first.
# Noto CJK ships as OpenType/CFF, which ReportLab's TTFont cannot read.
DEBIAN_CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
    "/usr/share/fonts/truetype/arphic/uming.ttc",  # fonts-arphic-uming
    "/usr/share/fonts/truetype/arphic/ukai.ttc",  # fonts-arphic-ukai
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # fonts-droid-fallback
)

# What the fonts above lack, character by character: CJK Extension A (in HanaMinA, with
# the rest of the basic plane) and Extensions B to F (HanaMinB).
DEBIAN_FALLBACK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",  # fonts-hanazono
    "/usr/share/fonts/truetype/hanazono/HanaMinB.ttf",  # fonts-hanazono
)

CID_FALLBACK_FONT = "STSong-Light"

#: The one line said (logged once per process, and by `onetrip serve`, `demo` and
#: `doctor` at start) when no embeddable Chinese font is found.
MISSING_FONT_ADVICE = (
    "no embeddable Chinese (CJK) font found: PDFs fall back to STSong-Light, which is not "
    "embedded, so their Chinese text shows blank in most viewers and printers; install "
    "the Debian package fonts-wqy-microhei or set ONETRIP_CJK_FONT to a TrueType font "
    "(path.ttf, or path.ttc#N)"
)


@dataclass(frozen=True)
class CjkFont:
    """A registered ReportLab font for Chinese text."""

    name: str
    bold_name: str
    embedded: bool
    path: str | None
    fallbacks: tuple[str, ...] = ()  # font specs tried, in order, for what it lacks
    index: int = 0  # the face inside a .ttc collection

    @property
    def has_real_bold(self) -> bool:
        return self.bold_name != self.name

    @property
    def label(self) -> str:
        """What a stored document records it was drawn with: `path#index`, or the CID
        font's name for the non-embedded fallback."""
        return f"{self.path}#{self.index}" if self.path else self.name


def parse_font_spec(spec: str) -> tuple[str, int]:
    """Split `path#index` (a face inside a .ttc collection) into path and index (default 0)."""
    path, sep, index = spec.rpartition("#")
    if sep and index.isdigit():
        return path, int(index)
    return spec, 0


def _register_ttf(path: str, index: int) -> str:
    """Register one TrueType face under a stable name and return the name (loads once)."""
    # The path's checksum keeps two files that share a file name apart.
    name = f"OneTripCJK-{Path(path).stem}-{index}-{zlib.crc32(path.encode()):08x}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
    return name


def _bold_sibling(path: str) -> str | None:
    """A bold face shipped beside the regular one (`X-Regular.ttf` -> `X-Bold.ttf`), if any."""
    regular = Path(path)
    stem = regular.stem
    base = stem.removesuffix("-Regular").removesuffix("Regular")
    for candidate in (f"{base}-Bold", f"{base}Bold", f"{base}-bold"):
        sibling = regular.with_name(candidate + regular.suffix)
        if sibling != regular and sibling.is_file():
            return str(sibling)
    return None


def parse_font_list(value: str | None) -> list[str] | None:
    """Font specs in `ONETRIP_CJK_FALLBACK_FONTS` form (separated by `os.pathsep`, `:` on
    Linux); None when unset, so the defaults apply."""
    if value is None:
        return None
    return [spec.strip() for spec in value.split(os.pathsep) if spec.strip()]


def _existing_fallbacks(
    configured: Iterable[str] | None, candidates: Iterable[str]
) -> list[tuple[str, int, str]]:
    """(path, index, spec) of each fallback font that exists: the configured ones, or by
    default the Debian CJK fonts and then `DEBIAN_FALLBACK_FONTS`."""
    found: list[tuple[str, int, str]] = []
    seen: set[tuple[str, int]] = set()
    specs = configured if configured is not None else (*candidates, *DEBIAN_FALLBACK_FONTS)
    for spec in specs:
        path, index = parse_font_spec(spec)
        if Path(path).is_file():
            if (path, index) not in seen:
                seen.add((path, index))
                found.append((path, index, spec))
        elif configured is not None:
            log.warning("ONETRIP_CJK_FALLBACK_FONTS: %s does not exist; skipped", path)
    return found


def find_cjk_font(
    configured: str | None,
    candidates: Iterable[str] | None = None,
    fallbacks: Iterable[str] | None = None,
) -> CjkFont:
    """Register and describe the best Chinese font available, with its fallback chain.

    `configured` (`path` or `path#index` for a .ttc face) wins when it loads; then the
    first of `candidates` (default `DEBIAN_CJK_FONTS`) that exists. With none, the CID
    font STSong-Light is returned, not embedded, and a WARNING is logged. `fallbacks`
    (font specs, default: the other `candidates` and `DEBIAN_FALLBACK_FONTS`) are the
    fonts tried for a character the font lacks; they are only read when one needs them.
    """
    specs: list[tuple[str, int, bool]] = []
    if configured:
        path, index = parse_font_spec(configured)
        specs.append((path, index, True))
    candidates = DEBIAN_CJK_FONTS if candidates is None else tuple(candidates)
    specs.extend((path, 0, False) for path in candidates)
    chain = _existing_fallbacks(None if fallbacks is None else list(fallbacks), candidates)
    for path, index, was_configured in specs:
        if not Path(path).is_file():
            if was_configured:
                log.warning("ONETRIP_CJK_FONT %s does not exist; trying system fonts", path)
            continue
        try:
            name = _register_ttf(path, index)
        except Exception as exc:  # TTFError, OSError, or a face index out of range
            log.warning("cannot use %s#%d as a CJK font: %s", path, index, exc)
            continue
        bold_name = name
        bold_path = _bold_sibling(path)
        if bold_path is not None:
            try:
                bold_name = _register_ttf(bold_path, index)
            except Exception as exc:
                log.warning("cannot use bold face %s: %s", bold_path, exc)
        others = tuple(spec for *face, spec in chain if tuple(face) != (path, index))
        return CjkFont(
            name=name,
            bold_name=bold_name,
            embedded=True,
            path=path,
            fallbacks=others,
            index=index,
        )

    _advise_once()
    if CID_FALLBACK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK_FONT))
    return CjkFont(name=CID_FALLBACK_FONT, bold_name=CID_FALLBACK_FONT, embedded=False, path=None)


_font_lock = threading.Lock()
_font: CjkFont | None = None
_advised = False  # MISSING_FONT_ADVICE said in this process


def _advise_once() -> None:
    global _advised
    if not _advised:
        _advised = True
        log.warning(MISSING_FONT_ADVICE)


def font_advice_once() -> str | None:
    """`MISSING_FONT_ADVICE` when documents have no embeddable Chinese font and this
    process has not said so yet (it is then not logged either: the caller says it, in
    one line at start); None otherwise."""
    global _advised
    first, _advised = not _advised, True
    return MISSING_FONT_ADVICE if first and not current_cjk_font().embedded else None


def current_cjk_font() -> CjkFont:
    """The process's Chinese font, chosen and registered on first use."""
    global _font
    if _font is None:
        with _font_lock:
            if _font is None:
                settings = get_settings()
                _font = find_cjk_font(
                    settings.cjk_font_path,
                    fallbacks=parse_font_list(settings.cjk_fallback_fonts),
                )
    return _font


def reset_cjk_font() -> None:
    """Forget the chosen font, its chains and the characters logged as missing (tests
    change ONETRIP_CJK_FONT and ONETRIP_CJK_FALLBACK_FONTS between cases)."""
    global _font, _missing_overflowed, _advised
    with _font_lock:
        _font = None
        _advised = False
        _chains.clear()
        _missing.clear()
        _widths.clear()
        _missing_overflowed = False


def cjk_font() -> str:
    """ReportLab font name to draw Chinese (and Latin) text with."""
    return current_cjk_font().name


def cjk_bold_font() -> str:
    """Bold face of `cjk_font()`, or the same name when the font has no bold face."""
    return current_cjk_font().bold_name


def cjk_emphasis() -> tuple[str, bool]:
    """Font for bold Chinese text, and whether it must be drawn with `synthetic_bold`."""
    font = current_cjk_font()
    return font.bold_name, not font.has_real_bold


def cjk_font_embedded() -> bool:
    """True when the Chinese font is embedded TrueType (prints anywhere)."""
    return current_cjk_font().embedded


@dataclass(frozen=True)
class FontInUse:
    """Which Chinese font this process draws with, as a stored document records it."""

    label: str  # `path#index` of the TrueType face, or `STSong-Light`
    embedded: bool  # False: the CID fallback, blank in viewers without the font pack


def cjk_font_in_use() -> FontInUse:
    """The Chinese font documents are drawn with now (chosen on first use, once per
    process), and whether it is embedded in them. A document drawn with a font that was
    not embedded is worth drawing again once this says `embedded`."""
    font = current_cjk_font()
    return FontInUse(label=font.label, embedded=font.embedded)


# --- fallback chains ----------------------------------------------------------------------

# Characters remembered per chain, and missing characters logged, are bounded: the names
# printed are input, and hostile input could name every code point there is.
MAX_REMEMBERED_CHARS = 4096

_Face = tuple[str, Mapping[int, int]]  # a registered font's name and its cmap
_face_lock = threading.Lock()
_faces: dict[str, _Face | None] = {}  # font spec or registered name -> face (None: unusable)
_chains: dict[str, FontChain | None] = {}  # font asked for -> its chain (None: no chain)
_missing: set[str] = set()
_missing_overflowed = False


def _face(entry: str) -> _Face | None:
    """Name and cmap of a font of a chain, registering (reading) it on first need."""
    if entry in _faces:  # entries are never removed
        return _faces[entry]
    with _face_lock:
        if entry not in _faces:
            try:
                if entry in pdfmetrics.getRegisteredFontNames():
                    name = entry
                else:
                    name = _register_ttf(*parse_font_spec(entry))
                _faces[entry] = (name, pdfmetrics.getFont(name).face.charToGlyph)
            except Exception as exc:  # TTFError, OSError, a face index out of range
                log.warning("cannot use %s as a fallback font: %s", entry, exc)
                _faces[entry] = None
        return _faces[entry]


def _report_missing(char: str) -> None:
    global _missing_overflowed
    if char in _missing:
        return
    if len(_missing) >= MAX_REMEMBERED_CHARS:
        if not _missing_overflowed:
            _missing_overflowed = True
            log.warning("%d characters no font has; no longer logging more", len(_missing))
        return
    _missing.add(char)
    log.warning(
        "no font has U+%04X %s: it prints as a blank (install fonts-hanazono or set "
        "ONETRIP_CJK_FALLBACK_FONTS)",
        ord(char),
        char,
    )


class FontChain:
    """A TrueType font and the fonts tried, in order, for each character it lacks."""

    def __init__(self, name: str, cmap: Mapping[int, int], fallbacks: Sequence[str]) -> None:
        self.name = name
        self._cmap = cmap
        self._fallbacks = tuple(fallbacks)  # font specs or registered names
        self._has: set[str] = set()  # characters seen that the font has
        self._font_of: dict[str, str] = {}  # a character the font lacks -> font drawing it

    def font_for(self, char: str) -> str:
        """The first font of the chain that has `char` (this font when none has it)."""
        if ord(char) in self._cmap:
            if len(self._has) < 4 * MAX_REMEMBERED_CHARS:  # room for everyday Chinese
                self._has.add(char)
            return self.name
        font = self._font_of.get(char)
        if font is None:
            font = self._first_with(char)
            if len(self._font_of) < MAX_REMEMBERED_CHARS:
                self._font_of[char] = font
        return font

    def _first_with(self, char: str) -> str:
        code = ord(char)
        for entry in self._fallbacks:
            face = _face(entry)
            if face is not None and code in face[1]:
                return face[0]
        _report_missing(char)
        return self.name

    def covers(self, text: str) -> bool:
        """True when `text` is known to be all in this font (one run): the hot path, a
        set operation in C. False may also mean characters not looked at yet."""
        return self._has.issuperset(text)

    def runs(self, text: str) -> list[tuple[str, str]]:
        """`text` as (font name, text) runs, each character in `font_for` its font."""
        if self.covers(text):
            return [(self.name, text)]
        runs: list[tuple[str, str]] = []
        start = 0
        current = self.font_for(text[0])
        for index in range(1, len(text)):
            font = self.font_for(text[index])
            if font != current:
                runs.append((current, text[start:index]))
                start, current = index, font
        runs.append((current, text[start:]))
        return runs


def font_chain(font: str) -> FontChain | None:
    """The fallback chain of a registered font: for a TrueType font, the Chinese font and
    its fallbacks after it; None for other fonts (ReportLab's own Latin and CID fonts)."""
    try:
        return _chains[font]
    except KeyError:
        pass
    chain = None
    registered = pdfmetrics.getFont(font)
    if isinstance(registered, TTFont):
        cjk = current_cjk_font()
        fallbacks = [cjk.name] if cjk.embedded and cjk.name != font else []
        chain = FontChain(font, registered.face.charToGlyph, [*fallbacks, *cjk.fallbacks])
    _chains[font] = chain
    return chain


#: widths measured: (text, font, size) -> points, emptied when it grows past its bound
_widths: dict[tuple[str, str, float], float] = {}
MAX_REMEMBERED_WIDTHS = 8192


def string_width(text: str, font: str, size: float) -> float:
    """`pdfmetrics.stringWidth(text, font, size)`, remembered: a line is measured to wrap
    or fit it and again to place it, and a document's labels and notes are the same in
    every document (ReportLab's measuring costs ~1,000 instructions a character)."""
    key = (text, font, size)
    width = _widths.get(key)
    if width is None:
        width = pdfmetrics.stringWidth(text, font, size)
        if len(_widths) >= MAX_REMEMBERED_WIDTHS:
            _widths.clear()
        _widths[key] = width
    return width


def font_runs(text: str, font: str) -> list[tuple[str, str]]:
    """`text` split into (font name, text) runs to draw it in `font` with its fallbacks:
    each character in the first font of the chain that has it. Text without such
    characters, and text in a font with no chain, is one run in `font`."""
    chain = font_chain(font)
    if chain is None:
        return [(font, text)]
    return chain.runs(text)


# ReportLab writes each character of a subset's ToUnicode CMap as `<%04X>`, so one beyond
# the basic plane (U+20000 𠀀) becomes `<20000>`, which readers reject: such a character
# prints but cannot be copied, searched or read by a screen reader. PDF wants UTF-16BE,
# a surrogate pair. ReportLab looks the function up when it writes a font, so ours wraps it.
_BEYOND_BMP = re.compile(r"^(<[0-9A-F]{2}> )<([0-9A-F]{5,6})>$", re.MULTILINE)


def _utf16_hex(match: re.Match[str]) -> str:
    return f"{match[1]}<{chr(int(match[2], 16)).encode('utf-16-be').hex().upper()}>"


def _to_unicode_cmap(fontname: str, subset: Sequence[int]) -> str:
    cmap = to_unicode_cmap(fontname, subset)  # ReportLab's text, faster
    if max(subset, default=0) <= 0xFFFF:
        return cmap
    return _BEYOND_BMP.sub(_utf16_hex, cmap)


_reportlab_to_unicode_cmap = getattr(
    ttfonts.makeToUnicodeCMap, "__wrapped__", ttfonts.makeToUnicodeCMap
)
_to_unicode_cmap.__wrapped__ = _reportlab_to_unicode_cmap  # type: ignore[attr-defined]
ttfonts.makeToUnicodeCMap = _to_unicode_cmap


# --- faster font subsets ------------------------------------------------------------------

# ReportLab re-reads and re-assembles a subset glyph by glyph for each document; see
# `subsets` for the version that gives the same bytes from what it remembered of the face.
ttfonts.TTFontFace.makeSubset = make_subset  # type: ignore[method-assign]


# ReportLab's `splitString` assigns each character of a TrueType string its code in the
# document's subsets one character at a time in Python (~1 M instructions a licence).
# A string whose characters all have their code already (ASCII, and every character
# seen earlier in the document) is those codes: in subset 0 its bytes, a look-up in C;
# across subsets, the runs of one subset each. Anything else (a new character, one the
# font lacks, a no-break space) is ReportLab's own code, which also assigns new codes.
_reportlab_split_string = TTFont.splitString


def _split_string(
    self: TTFont, text: str | bytes, doc: object, encoding: str = "utf-8"
) -> list[tuple[int, bytes]]:
    state = self.state.get(doc)
    if state is not None and type(text) is str and text and "\xa0" not in text:
        codes = list(map(state.assignments.get, map(ord, text)))
        if None not in codes:
            if max(codes) < 256:
                return [(0, bytes(codes))]
            # characters of later subsets too (a holder's, after a template's reserved
            # text): ReportLab's runs of one subset each, from the codes already given
            return [
                (subset, bytes(code & 0xFF for code in run))
                for subset, run in groupby(codes, _subset_of)
            ]
    return _reportlab_split_string(self, text, doc, encoding)


def _subset_of(code: int) -> int:
    return code >> 8


TTFont.splitString = _split_string  # type: ignore[method-assign]


def reserve_characters(canvas: Any, fonts: Iterable[str], text: str) -> None:
    """Give `text`'s characters the first codes of each TrueType font of `fonts` in the
    canvas's document, in order, and start a new subset for any other character.

    A document's subsets are numbered in the order its characters are first drawn, so
    one different name changes the whole embedded subset. A template that reserves its
    fixed text (labels, notes: the same for every document it draws) first gets a first
    subset with the same codes in each document: `make_subset` makes that file once and
    the PDF stream filter compresses it once. The characters drawn later (a holder's
    name) go to a subset of their own. It costs a second subset's tables in the file
    (~5 KB for a Chinese font's hinting programs).

    Call it before drawing anything in those fonts. Past 255 characters the reserved text
    spills into the next subset, which is then shared too. Standard (Type 1) fonts have no
    subsets and are skipped."""
    doc = canvas._doc
    for name in dict.fromkeys(fonts):
        font = pdfmetrics.getFont(name)
        if not getattr(font, "_dynamicFont", False):
            continue
        if font.state.get(doc) is None and _reserved_again(font, doc, text):
            continue
        fresh = font.state.get(doc) is None
        font.splitString(text, doc)
        state = font.state[doc]
        if state.nextCode & 0xFF:  # what follows starts on a fresh subset
            state.nextCode = (state.nextCode | 0xFF) + 1
        if fresh:
            _remember_reserved(font, text, state)


# A template reserves the same text in each of its documents: ReportLab's splitString
# gives its ~150 characters their codes one by one in Python (~0.6 M instructions a
# licence). What a fresh document's state is once that text is reserved depends only on
# the font and the text, so it is remembered, and a document reserving it again gets a
# copy: the same codes, subsets and next code as splitString would have given it.
_RESERVED: dict[tuple[Any, ...], dict[str, Any]] = {}
_RESERVED_MAX = 32
#: the attributes of ReportLab's `TTFont.State` a snapshot knows how to copy
_STATE_ATTRIBUTES = frozenset(("assignments", "nextCode", "internalName", "frozen", "subsets"))


def _reserved_key(font: TTFont, text: str) -> tuple[Any, ...]:
    # the face and its cmap's size too: a font whose cmap grew (shaping's private
    # characters) assigns differently
    return (font, font.face, len(font.face.charToGlyph), font._asciiReadable, text)


def _remember_reserved(font: TTFont, text: str, state: Any) -> None:
    snapshot = state.__dict__
    if (
        snapshot.keys() != _STATE_ATTRIBUTES
        or type(state) is not TTFont.State
        or state.frozen
        or state.internalName is not None
    ):
        return  # not a state this module knows how to copy: reserve it each time
    key = _reserved_key(font, text)
    _RESERVED.pop(key, None)
    _RESERVED[key] = {
        "assignments": dict(state.assignments),
        "subsets": [list(subset) for subset in state.subsets],
        "nextCode": state.nextCode,
    }
    forget_oldest(_RESERVED, _RESERVED_MAX)


def _reserved_again(font: TTFont, doc: Any, text: str) -> bool:
    """Give `doc` (with no state for `font` yet) the remembered state of `text` reserved;
    False when it is not remembered."""
    key = _reserved_key(font, text)
    snapshot = _RESERVED.pop(key, None)
    if snapshot is None:
        return False
    _RESERVED[key] = snapshot  # put back last: the least recently used goes first
    state = TTFont.State.__new__(TTFont.State)
    state.__dict__.update(
        assignments=dict(snapshot["assignments"]),
        subsets=[list(subset) for subset in snapshot["subsets"]],
        nextCode=snapshot["nextCode"],
        internalName=None,
        frozen=0,
    )
    font.state[doc] = state
    return True


# A subset's /Widths are `map(face.getCharWidth, subset)`: a Python call a character
# (~200 a licence). The face's widths as a dictionary whose misses are its default width
# make that a look-up in C; `getCharWidth` (a property now) hands out its `__getitem__`.
class _CharWidths(dict[int, float]):
    """A face's `charWidths`, answering `defaultWidth` for a character it lacks."""

    def __init__(self, widths: Mapping[int, float], default: float) -> None:
        super().__init__(widths)
        self.source = widths  # the dictionary copied, to notice it being replaced
        self.count = len(widths)
        self.default = default

    def __missing__(self, code: int) -> float:
        return self.default


def _char_width(face: ttfonts.TTFontFace) -> Callable[[int], float]:
    widths = face.__dict__.get("_onetrip_char_widths")
    current = face.charWidths
    if (
        widths is None
        or widths.source is not current
        or widths.count != len(current)
        or widths.default != face.defaultWidth
    ):
        widths = face._onetrip_char_widths = _CharWidths(current, face.defaultWidth)
    return widths.__getitem__


_reportlab_char_width = ttfonts.TTFontFace.getCharWidth
ttfonts.TTFontFace.getCharWidth = property(_char_width)  # type: ignore[assignment]
