"""The languages applicant pages speak, and how a page picks one."""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

DEFAULT_LANGUAGE = "zh-CN"


def page_language(
    query: Mapping[str, Any], applicant: Mapping[str, Any] | None, spoken: Container[str]
) -> str:
    """`?lang=` if the page speaks it, else the applicant's language, else Chinese."""
    lang = query.get("lang") or (applicant or {}).get("language")
    return lang if lang in spoken else DEFAULT_LANGUAGE
