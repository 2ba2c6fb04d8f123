"""The languages applicant pages speak, and how a page picks one."""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

DEFAULT_LANGUAGE = "zh-CN"


def page_language(
    query: Mapping[str, Any],
    applicant: Mapping[str, Any] | None,
    spoken: Container[str],
    accept_language: str | None = None,
) -> str:
    """`?lang=` if the page speaks it, else the applicant's language, else Chinese.

    A page about a payment speaks the language its department recorded for the
    applicant (a shared or borrowed phone says nothing about its reader). A page that
    knows no applicant (`applicant` None: the 404 page of a bad link) follows the
    browser's Accept-Language instead, first spoken language by preference."""
    lang = query.get("lang")
    if lang in spoken:
        return str(lang)
    if applicant is not None:
        lang = applicant.get("language")
        return str(lang) if lang in spoken else DEFAULT_LANGUAGE
    return preferred_language(accept_language or "", spoken)


def preferred_language(accept_language: str, spoken: Container[str]) -> str:
    """The spoken language an Accept-Language header prefers most ("en-US" is "en",
    "zh", "zh-Hans" and "zh-TW" are Chinese), else Chinese."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        lang = _spoken_for(tag.strip().lower(), spoken)
        if lang and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def _spoken_for(tag: str, spoken: Container[str]) -> str | None:
    primary = tag.split("-", 1)[0]
    if primary == "zh" and DEFAULT_LANGUAGE in spoken:
        return DEFAULT_LANGUAGE
    if primary == "en" and "en" in spoken:
        return "en"
    return None
