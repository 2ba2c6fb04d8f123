"""What applicants and departments are told: one Jinja2 template per kind and language.

`render(kind, language, context)` turns a notification's facts into a `Rendered` message:
an email subject, its plain-text and HTML parts (which say the same thing: both come
from the one template, drawn once with HTML parts and once with text parts), and the
SMS text. `KINDS` lists every kind there is a template for; `sms_length` counts an SMS
the way the network bills it.

Templates live in `notifications/templates/{language}/{kind}.html` (the `.html` suffix
is what the package data ships). Each defines the blocks `subject`, `sms` and
`content`; `content` is written with the macros of `email/ui.html` (HTML: inline CSS
only, table layout, no remote images or fonts, so it reads the same in Outlook, Gmail,
Apple Mail and Foxmail) or `email/ui_text.html` (plain text), chosen at render time.
Adding a kind is a template per language and its name in `KINDS`.

Every context key may be missing (see `render`); templates show what they get and
leave the rest out, never "None".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, Template

from onetrip.money import Money, format_amount, valid_currency

KINDS: tuple[str, ...] = (
    "payment_succeeded",
    "payment_failed",
    "refunded",
    "license_printed",
    "dispatched",
    "out_for_delivery",
    "failed_attempt",
    "delivered",
    "pickup_ready",
    "collected",
    "returned",
    "endpoint_failing",
    "endpoint_disabled",
)
"""Every kind of message; the last two go to a department's contact, the rest to the
applicant."""

DEPARTMENT_KINDS: frozenset[str] = frozenset({"endpoint_failing", "endpoint_disabled"})
"""Kinds addressed to a department (about its webhook endpoint), not to an applicant."""

RATING_KINDS: frozenset[str] = frozenset({"delivered", "collected"})
"""Kinds that invite the applicant to rate the service (they carry `rating_url`)."""

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TIMEZONE = "Asia/Shanghai"

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Rendered:
    """One message in one language: the email's subject, text and HTML parts, and the
    SMS text (plain, no markup)."""

    subject: str
    text: str
    html: str
    sms: str


def language_of(language: str | None) -> str:
    """The template language for an applicant's recorded language: "en…" is English,
    anything else (missing, "zh", unknown) Chinese."""
    if language in LANGUAGES:
        return str(language)
    if language and language.lower().split("-", 1)[0] == "en":
        return "en"
    return DEFAULT_LANGUAGE


def render(kind: str, language: str, context: Mapping[str, Any]) -> Rendered:
    """The message of `kind` in `language` (falling back to zh-CN) for `context`.

    Context keys (any may be missing where it does not apply): applicant_name,
    department_name, matter_name, reference, payment_id, amount (int minor units),
    currency, tracking_url, rating_url, license_no, license_title, partner_name,
    tracking_number, refund_amount, amount_refunded, refund_status ("partial"|"full"),
    failure_reason, location, failed_attempts, occurred_at (aware datetime),
    pickup_note, timezone (IANA name for times, default Asia/Shanghai); for the
    department kinds endpoint_id, endpoint_url, failing_since, disable_at (datetimes),
    last_error. Amounts are shown with `onetrip.money.format_amount`, times in the
    local zone as `2026-12-01 14:05`.

    Raises ValueError for a kind not in `KINDS`. Pure: no I/O beyond reading the
    (cached) templates, safe to call inside a unit of work.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
    lang = language_of(language)
    view = _view(kind, lang, context)
    html_template = _environment(html=True).get_template(f"{lang}/{kind}.html")
    text_template = _environment(html=False).get_template(f"{lang}/{kind}.html")
    subject = _one_line(_block(text_template, "subject", view))
    sms = _one_line(_block(text_template, "sms", view))
    html = html_template.render(
        view,
        layout="email/layout.html",
        ui_macros="email/ui.html",
        subject=subject,
        preheader=_preheader(sms),
    )
    text = text_template.render(
        view, layout="email/layout_text.html", ui_macros="email/ui_text.html", subject=subject
    )
    return Rendered(subject=subject, text=_tidy_text(text), html=html, sms=sms)


# --- SMS length -----------------------------------------------------------------------

# GSM 03.38 default alphabet (one septet each) and its extension table (escape + one).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("\f^{}\\[~]|€")
_GSM_SINGLE, _GSM_PART = 160, 153  # septets: a part loses 7 to the concatenation header
_UCS2_SINGLE, _UCS2_PART = 70, 67  # UTF-16 code units


def sms_length(text: str) -> tuple[int, int]:
    """(characters, segments) of `text` as sent: GSM-7 when every character is in the
    GSM 03.38 alphabet, else UCS-2.

    Characters are counted as the network does: GSM-7 septets (the extension characters
    ^ { } \\ [ ~ ] | € count 2) or UTF-16 code units (an emoji beyond the BMP counts 2).
    One segment holds 160 septets or 70 units; a longer text is split into parts of 153
    septets or 67 units, never splitting an escape pair or a surrogate pair. An empty
    text is (0, 0).
    """
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = [2 if c in _GSM_EXTENDED else 1 for c in text]
        single, part = _GSM_SINGLE, _GSM_PART
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = _UCS2_SINGLE, _UCS2_PART
    total = sum(units)
    if total == 0:
        return 0, 0
    if total <= single:
        return total, 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return total, segments


# --- the view a template sees -----------------------------------------------------------


def _view(kind: str, lang: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The context plus what templates should not compute: formatted amounts and times,
    and the rating links. Missing keys become None so `{% if x %}` reads naturally."""
    view: dict[str, Any] = dict.fromkeys(_CONTEXT_KEYS)
    view.update({k: v for k, v in context.items() if v is not None and v != ""})
    view["kind"] = kind
    view["lang"] = lang
    currency = view.get("currency")
    for key in ("amount", "refund_amount", "amount_refunded"):
        view[f"{key}_text"] = _amount(view.get(key), currency, lang)
    zone = _zone(view.get("timezone"))
    for key in ("occurred_at", "failing_since", "disable_at"):
        view[f"{key}_text"] = _local_time(view.get(key), zone)
    attempts = view.get("failed_attempts")
    view["failed_attempts"] = attempts if isinstance(attempts, int) and attempts > 0 else None
    rating_url = view.get("rating_url")
    view["rating_links"] = (
        [(score, _with_query(str(rating_url), score=score)) for score in range(1, 6)]
        if rating_url and kind in RATING_KINDS
        else []
    )
    return view


_CONTEXT_KEYS = (
    "applicant_name",
    "department_name",
    "matter_name",
    "reference",
    "payment_id",
    "amount",
    "currency",
    "tracking_url",
    "rating_url",
    "license_no",
    "license_title",
    "partner_name",
    "tracking_number",
    "refund_amount",
    "amount_refunded",
    "refund_status",
    "failure_reason",
    "location",
    "failed_attempts",
    "occurred_at",
    "pickup_note",
    "timezone",
    "endpoint_id",
    "endpoint_url",
    "failing_since",
    "disable_at",
    "last_error",
)


def _amount(amount: Any, currency: Any, lang: str) -> str | None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        return None
    code = currency if isinstance(currency, str) and valid_currency(currency) else "CNY"
    return format_amount(Money(amount, code), lang)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo(DEFAULT_TIMEZONE)
    except (ValueError, KeyError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _local_time(moment: Any, zone: ZoneInfo) -> str | None:
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:  # naive: taken as UTC, as the database stores it
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _with_query(url: str, **params: Any) -> str:
    """`url` with `params` added to its query, before any #fragment."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- Jinja ------------------------------------------------------------------------------


@cache
def _environment(*, html: bool) -> Environment:
    """The HTML environment escapes everything it prints; the text one nothing (a
    plain-text part or SMS must show `&`, not `&amp;`)."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )


def _block(template: Template, name: str, view: dict[str, Any]) -> str:
    context = template.new_context(
        {**view, "layout": "email/layout_text.html", "ui_macros": "email/ui_text.html"}
    )
    return "".join(template.blocks[name](context))


_SPACES = re.compile(r"\s+")
_SMS_BRAND = re.compile(r"^(【OneTrip】|OneTrip: )")
_URL = re.compile(r"[:：]?\s*https?://\S+")


def _preheader(sms: str) -> str:
    """The inbox preview line (hidden in the email): the SMS's summary, without its
    brand prefix and links."""
    summary = _URL.sub("", _SMS_BRAND.sub("", sms)).strip()
    return summary[:1].upper() + summary[1:]


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _tidy_text(text: str) -> str:
    """Trailing spaces off, at most one blank line between paragraphs."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


# --- previews ---------------------------------------------------------------------------


_SAMPLE_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "applicant_name": "张伟",
        "department_name": "杭州市公安局",
        "matter_name": "普通护照签发",
        "license_title": "中华人民共和国普通护照",
        "partner_name": "顺丰速运",
        "failure_reason": "银行卡被发卡行拒绝",
        "location": "杭州市西湖区文三路",
        "pickup_note": "工作日 9:00–17:00，12 号窗口",
    },
    "en": {
        "applicant_name": "Zhang Wei",
        "department_name": "Hangzhou Public Security Bureau",
        "matter_name": "Ordinary passport",
        "license_title": "Passport of the People's Republic of China",
        "partner_name": "SF Express",
        "failure_reason": "the card was declined by the bank",
        "location": "Xihu District, Hangzhou",
        "pickup_note": "Weekdays 9:00–17:00, window 12",
    },
}


def sample_context(language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """Realistic facts for every key, for previews and tests: a passport paid for,
    partly refunded, sent by courier; a department endpoint failing. Tracking links have
    the length of real ones (a 32-character token), so SMS lengths measured on it hold."""
    tracking_url = "https://pay.zjzwfw.gov.cn/track/Qm9vdHN0cmFwVG9rZW5fQWJjRGVmR2g0"
    occurred = datetime(2026, 12, 1, 6, 5, tzinfo=UTC)
    return {
        **_SAMPLE_WORDS[language_of(language)],
        "reference": "CRJ-2026-000001",
        "payment_id": "pay_01JDZ8Q4M6V7P2K9X3T5R8W1YB",
        "amount": 12000,
        "currency": "CNY",
        "tracking_url": tracking_url,
        "rating_url": f"{tracking_url}#rating",
        "license_no": "E63012345",
        "tracking_number": "SF1402345678912",
        "refund_amount": 2000,
        "amount_refunded": 2000,
        "refund_status": "partial",
        "failed_attempts": 2,
        "occurred_at": occurred,
        "endpoint_id": "whe_01JDZ9A1B2C3D4E5F6G7H8J9K0",
        "endpoint_url": "https://crj.example.gov.cn/onetrip/webhooks",
        "failing_since": occurred - timedelta(hours=25),
        "disable_at": occurred + timedelta(days=2),
        "last_error": "HTTP 503 Service Unavailable",
    }
