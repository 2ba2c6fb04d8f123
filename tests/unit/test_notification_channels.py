"""The channels' parsing and building, without a network: SMTP_URL, the SMS providers
setting, phone numbers, and the email's MIME structure."""

from __future__ import annotations

import email
import email.policy

import pytest

from notifications.channels import Attachment, Message
from notifications.channels.email import build_email, is_email_address
from notifications.channels.sms import normalize_phone, parse_sms_providers
from onetrip.smtp import parse_smtp_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://mail.example.org",
            {"host": "mail.example.org", "port": 25, "implicit_tls": False, "starttls": "auto"},
        ),
        (
            "smtp://user%40example.org:p%3Ass%2Fw@mail.example.org:587?starttls=required",
            {
                "username": "user@example.org",
                "password": "p:ss/w",
                "port": 587,
                "starttls": "required",
            },
        ),
        ("smtps://u:p@mail.example.org", {"implicit_tls": True, "username": "u", "port": 465}),
        ("smtp://relay:2525?starttls=never", {"starttls": "never", "port": 2525}),
        (
            "smtp://relay?cafile=/etc/ca.pem&verify=false",
            {"cafile": "/etc/ca.pem", "verify": False},
        ),
    ],
)
def test_smtp_urls(url: str, expected: dict[str, object]) -> None:
    config = parse_smtp_url(url, timeout=7)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert config.timeout == 7


@pytest.mark.parametrize(
    "url", ["smtp://host:99999", "smtp://host?verify=perhaps", "mailto:x@y", "smtps://"]
)
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("+44 7700 900123", "+447700900123"),
        ("+852 9123 4567", "+85291234567"),
        ("12800138000", None),  # not a Chinese mobile prefix
        ("010-12345678", None),  # a Beijing landline
        ("+86 10 1234 5678", None),
        ("+1", None),
        ("", None),
        ("phone", None),
    ],
)
def test_phone_numbers(raw: str, e164: str | None) -> None:
    assert normalize_phone(raw) == e164


def test_sms_providers_compact_and_json() -> None:
    compact = parse_sms_providers("a=https://sms-a.example/v1/send#KEY-A, b=http://b.example#k#b")
    assert [(p.name, p.url, p.key) for p in compact] == [
        ("a", "https://sms-a.example/v1/send", "KEY-A"),
        ("b", "http://b.example/", "k#b"),
    ]
    assert "KEY-A" not in repr(compact[0])
    listed = parse_sms_providers('[{"name": "x", "url": "https://x.example/sms", "key": "K"}]')
    assert [(p.name, p.url, p.key) for p in listed] == [("x", "https://x.example/sms", "K")]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "no provider"),
        ("a=https://x.example", "no key"),
        ("https://x.example#k", "not name=URL#KEY"),
        ("a=ftp://x.example#k", "http"),
        ("a=https://x.example#k,a=https://y.example#k", "twice"),
        ("a b=https://x.example#k", "bad provider name"),
        ("[{]", "not valid JSON"),
        ('[{"name": "a"}]', "strings"),
    ],
)
def test_bad_sms_providers(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_sms_providers(value)


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("zhang.san@example.org", True),
        ("a+tag@mail.example.cn", True),
        ("Zhang <z@example.org>", False),
        ("z@example..org", False),
        ("z@", False),
        ("z@example.org,y@example.org", False),
    ],
)
def test_email_addresses(address: str, valid: bool) -> None:
    assert is_email_address(address) is valid


def test_the_mime_structure() -> None:
    message = Message(
        id="ntf_01abc",
        channel="email",
        recipient="z@example.org",
        subject="Payment received",
        text="Paid.",
        html="<p>Paid.</p>",
        attachments=(Attachment("receipt.pdf", "application/pdf", b"%PDF-1.4"),),
        language="en",
    )
    mail = build_email(message, "OneTrip <no-reply@onetrip.example>")
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    structure = [part.get_content_type() for part in parsed.walk()]
    assert structure == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    assert parsed["Message-ID"] == "<ntf_01abc@onetrip.example>"
    assert parsed["Content-Language"] == "en"
    assert parsed.get_body(("plain",))["Content-Transfer-Encoding"] == "quoted-printable"
    chinese = build_email(
        Message(
            id="ntf_2", channel="email", recipient="z@example.org", subject="支付", text="你好"
        ),
        "OneTrip <no-reply@onetrip.example>",
    )
    assert chinese["Content-Transfer-Encoding"] == "base64"
    two_lines = build_email(
        Message(id="ntf_3", channel="email", recipient="z@q.org", subject="a\r\nBcc: x", text="."),
        "OneTrip <no-reply@onetrip.example>",
    )
    assert two_lines["Subject"] == "a Bcc: x" and two_lines["Bcc"] is None
    with pytest.raises(ValueError, match="ONETRIP_EMAIL_FROM"):
        build_email(message, "OneTrip")
