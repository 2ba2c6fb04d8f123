"""The messages applicants and departments get: every kind in zh-CN and en, emails whose
two parts say the same, safe HTML for mail clients, and SMS texts that stay short."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from notifications.messages import (
    DEPARTMENT_KINDS,
    KINDS,
    RATING_KINDS,
    Rendered,
    render,
    sample_context,
    sms_length,
)
from onetrip.money import Money, format_amount

LANGUAGES = ("zh-CN", "en")
APPLICANT_KINDS = [k for k in KINDS if k not in DEPARTMENT_KINDS]


def _visible_text(html: str) -> str:
    """The words a reader sees in the HTML part (tags dropped, entities undone)."""
    import html as html_module

    body = re.sub(r"<(title|head)\b.*?</\1>", " ", html, flags=re.S)
    return html_module.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_a_subject_both_parts_and_an_sms(kind: str, language: str) -> None:
    message = render(kind, language, sample_context(language))
    assert isinstance(message, Rendered)
    assert message.subject and "\n" not in message.subject
    assert message.text.strip() and message.sms.strip()
    assert message.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'lang="{language}"' in message.html
    for part in (message.subject, message.text, message.html, message.sms):
        assert "None" not in part and "{{" not in part and "{%" not in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_text_part_says_what_the_html_part_says(kind: str, language: str) -> None:
    """Every line of the plain-text part (but the footer) is in the HTML part's text."""
    message = render(kind, language, sample_context(language))
    seen = re.sub(r"\s+", "", _visible_text(message.html))
    body = message.text.split("\n--\n", 1)[0]
    for line in filter(None, (line.strip() for line in body.splitlines())):
        # a detail row or a link line in text is "label：value"; both halves are in the HTML
        for piece in re.split(r"[：]|: ", line):
            assert re.sub(r"\s+", "", piece) in seen, (piece, kind, language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", APPLICANT_KINDS)
def test_applicant_emails_link_to_the_tracking_page(kind: str, language: str) -> None:
    context = sample_context(language)
    message = render(kind, language, context)
    target = context["rating_url"] if kind in RATING_KINDS else context["tracking_url"]
    assert f'href="{target}"' in message.html
    assert target in message.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_html_loads_nothing_and_styles_only_inline(kind: str, language: str) -> None:
    html = render(kind, language, sample_context(language)).html
    lowered = html.lower()
    for forbidden in ("<img", "<link", "<script", "<style", "@import", "url(", "src="):
        assert forbidden not in lowered, forbidden
    assert "class=" not in lowered  # classes need a <style> block, which clients drop
    assert re.search(r"<table[^>]+role=\"presentation\"", html)


@pytest.mark.parametrize("language", LANGUAGES)
def test_amounts_are_formatted_by_money_in_the_readers_language(language: str) -> None:
    context = {**sample_context(language), "amount": 1234550, "currency": "CNY"}
    message = render("payment_succeeded", language, context)
    shown = format_amount(Money(1234550, "CNY"), language)
    assert shown in message.text and shown in _visible_text(message.html)
    assert shown in message.sms
    yen = render("payment_succeeded", language, {**context, "amount": 1500, "currency": "JPY"})
    assert format_amount(Money(1500, "JPY"), language) in yen.text


def test_refund_shows_this_refund_and_the_total_refunded() -> None:
    context = {
        **sample_context("zh-CN"),
        "amount": 12000,
        "refund_amount": 3000,
        "amount_refunded": 5000,
        "refund_status": "partial",
    }
    text = render("refunded", "zh-CN", context).text
    assert "本次退款：¥30.00" in text and "累计退款：¥50.00" in text
    full = render("refunded", "en", {**context, "refund_status": "full"})
    assert full.subject.startswith("Fully refunded")


def test_times_are_shown_in_the_local_zone() -> None:
    moment = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    shanghai = render("delivered", "zh-CN", {"occurred_at": moment}).text
    assert "2026-12-02 00:30" in shanghai
    london = render("delivered", "en", {"occurred_at": moment, "timezone": "Europe/London"})
    assert "2026-12-01 16:30" in london.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_nearly_empty_context_still_reads_well(kind: str, language: str) -> None:
    message = render(kind, language, {})
    for part in (message.subject, message.text, message.sms, _visible_text(message.html)):
        assert "None" not in part
        assert "：。" not in part and "（）" not in part and "()" not in part
        assert "「」" not in part and "“”" not in part


def test_applicant_text_is_escaped_in_html_and_kept_in_text() -> None:
    name = '<script>alert("x")</script> & 李'
    message = render("payment_succeeded", "zh-CN", {"applicant_name": name})
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html
    assert name in message.text


def test_language_falls_back_to_chinese_and_reads_english_variants() -> None:
    chinese = render("dispatched", "zh-CN", {})
    assert render("dispatched", "fr", {}) == chinese
    assert render("dispatched", "", {}) == chinese
    assert render("dispatched", "en-GB", {}) == render("dispatched", "en", {})


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown notification kind"):
        render("license_eaten_by_dog", "en", {})


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(RATING_KINDS))
def test_delivered_and_collected_invite_a_rating(kind: str, language: str) -> None:
    context = sample_context(language)
    message = render(kind, language, context)
    assert context["rating_url"] in message.text
    assert context["rating_url"] in message.sms
    for score in range(1, 6):  # one star per score, preselecting it on the form
        assert f"?score={score}#rating" in message.html


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in RATING_KINDS])
def test_other_kinds_do_not_ask_for_a_rating(kind: str) -> None:
    context = sample_context("zh-CN")
    message = render(kind, "zh-CN", context)
    assert context["rating_url"] not in message.html + message.text + message.sms


def test_department_emails_tell_how_to_re_enable_the_endpoint() -> None:
    context = sample_context("en")
    message = render("endpoint_disabled", "en", context)
    assert f"PATCH /api/v1/webhook-endpoints/{context['endpoint_id']}" in message.text
    assert context["last_error"] in message.text
    failing = render("endpoint_failing", "zh-CN", sample_context("zh-CN"))
    assert "2026-12-03 14:05" in failing.text  # disable_at, in the local zone


# --- SMS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, 0)),
        ("a" * 160, (160, 1)),
        ("a" * 161, (161, 2)),
        ("a" * 306, (306, 2)),
        ("a" * 307, (307, 3)),
        ("€" * 80, (160, 1)),  # an extension character counts two septets
        ("€" * 81, (162, 2)),
        ("a" * 152 + "€" + "a" * 153, (307, 3)),  # an escape pair is never split
        ("护" * 70, (70, 1)),
        ("护" * 71, (71, 2)),
        ("护" * 134, (134, 2)),
        ("护" * 135, (135, 3)),
        ("a" * 69 + "护", (70, 1)),  # one non-GSM character makes the whole text UCS-2
        ("😀" * 35, (70, 1)),  # beyond the BMP: two UTF-16 units each
        ("😀" * 36, (72, 2)),
        ("护" * 66 + "😀" + "护", (69, 1)),
        ("护" * 66 + "😀" + "护" * 4, (72, 2)),
    ],
)
def test_sms_length_counts_like_the_network(text: str, expected: tuple[int, int]) -> None:
    assert sms_length(text) == expected


def test_sms_length_never_splits_a_surrogate_pair() -> None:
    # 66 units, then an emoji (2 units) that does not fit part one's 67: it starts part
    # two, which then holds it and 65 more (counting by units alone would say 2 parts of
    # 67 for one more character, splitting the pair).
    text = "护" * 66 + "😀" + "护" * 65
    assert sms_length(text) == (133, 2)
    assert sms_length(text + "护") == (134, 3)


# Which texts fit one segment with realistic facts (a 32-character tracking token, a
# passport, a courier's 15-character tracking number). The ones that carry a link (pay
# again, rate the service) need two in Chinese: a link alone is ~65 of a segment's 70.
ONE_SEGMENT = {
    "zh-CN": set(KINDS) - {"payment_failed", "delivered", "collected"},
    "en": set(KINDS) - {"payment_failed"},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_texts_fit_one_segment_where_they_can_and_never_more_than_two(
    language: str,
) -> None:
    lengths = {k: sms_length(render(k, language, sample_context(language)).sms) for k in KINDS}
    assert {k for k, (_, segments) in lengths.items() if segments == 1} == ONE_SEGMENT[language]
    assert all(segments <= 2 for _, segments in lengths.values()), lengths


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_sms_is_plain_text_on_one_line(kind: str, language: str) -> None:
    sms = render(kind, language, sample_context(language)).sms
    assert "\n" not in sms and "<" not in sms and "&amp;" not in sms
    assert sms.startswith("【OneTrip】" if language == "zh-CN" else "OneTrip: ")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_inbox_preview_is_the_sms_summary_without_links(language: str) -> None:
    context = sample_context(language)
    message = render("delivered", language, context)
    preview = re.search(r'<div style="display:none;[^"]*">([^<]*)</div>', message.html)
    assert preview is not None
    assert preview.group(1) and "http" not in preview.group(1)
    assert "OneTrip" not in preview.group(1)  # the brand prefix of the SMS is dropped
    assert preview.group(1)[1:9] in message.sms  # (its first letter capitalised)


def test_the_html_declares_its_charset_and_language() -> None:
    html = render("payment_succeeded", "zh-CN", {}).html
    assert '<meta charset="utf-8">' in html and '<html lang="zh-CN">' in html
    assert "&#39;" not in html  # font names are not entity-escaped inside style=""


def test_every_kind_has_a_template_per_language_and_no_template_is_orphaned() -> None:
    from notifications.messages import LANGUAGES as SPOKEN
    from notifications.messages import TEMPLATES

    for language in SPOKEN:
        found = {path.stem for path in (TEMPLATES / language).glob("*.html")}
        assert found == set(KINDS), (language, found ^ set(KINDS))


def test_a_printed_licence_is_not_announced_as_ready_to_collect() -> None:
    # "ready" is what the pickup message says: an applicant must not go to the window
    # on the strength of the printed one
    printed = render("license_printed", "en", sample_context("en"))
    pickup = render("pickup_ready", "en", sample_context("en"))
    assert "ready" not in printed.subject.lower() and "printed" in printed.subject
    assert "collect" in pickup.subject.lower()


@pytest.mark.parametrize(("attempts", "said"), [(1, "the first failed attempt"), (3, "3 attempts")])
def test_a_failed_attempt_counts_the_attempts_in_plain_english(attempts: int, said: str) -> None:
    text = render("failed_attempt", "en", {"failed_attempts": attempts}).text
    assert said in text and "that failed" not in text
