"""The Chinese font every document draws with: found, registered and embedded once.

A document that must print anywhere needs its Chinese font *embedded*, so we look for a
TrueType CJK font (the configured path, then Debian's packages) and only fall back to
ReportLab's CID font STSong-Light, which is not embedded and shows as blank text in
viewers without the Adobe Asian font pack.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

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

CID_FALLBACK_FONT = "STSong-Light"


@dataclass(frozen=True)
class CjkFont:
    """A registered ReportLab font for Chinese text."""

    name: str
    bold_name: str
    embedded: bool
    path: str | None

    @property
    def has_real_bold(self) -> bool:
        return self.bold_name != self.name


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


def find_cjk_font(configured: str | None, candidates: Iterable[str] | None = None) -> CjkFont:
    """Register and describe the best Chinese font available.

    `configured` (`path` or `path#index` for a .ttc face) wins when it loads; then the
    first of `candidates` (default `DEBIAN_CJK_FONTS`) that exists. With none, the CID
    font STSong-Light is returned, not embedded, and a WARNING is logged.
    """
    specs: list[tuple[str, int, bool]] = []
    if configured:
        path, index = parse_font_spec(configured)
        specs.append((path, index, True))
    if candidates is None:
        candidates = DEBIAN_CJK_FONTS
    specs.extend((path, 0, False) for path in candidates)
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
        return CjkFont(name=name, bold_name=bold_name, embedded=True, path=path)

    log.warning(
        "no TrueType CJK font found (set ONETRIP_CJK_FONT or install fonts-wqy-microhei); "
        "using %s, which is not embedded: Chinese text will not display in viewers "
        "or print servers without the Asian font pack",
        CID_FALLBACK_FONT,
    )
    if CID_FALLBACK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK_FONT))
    return CjkFont(name=CID_FALLBACK_FONT, bold_name=CID_FALLBACK_FONT, embedded=False, path=None)


_font_lock = threading.Lock()
_font: CjkFont | None = None


def current_cjk_font() -> CjkFont:
    """The process's Chinese font, chosen and registered on first use."""
    global _font
    if _font is None:
        with _font_lock:
            if _font is None:
                _font = find_cjk_font(get_settings().cjk_font_path)
    return _font


def reset_cjk_font() -> None:
    """Forget the chosen font (tests change ONETRIP_CJK_FONT between cases)."""
    global _font
    with _font_lock:
        _font = None


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
