"""Email over SMTP against a real aiosmtpd server (tests/smtp_server.py): what arrives,
how (AUTH, STARTTLS, SMTPS), and what a refusing or silent server turns into."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from notifications.channels import (
    Attachment,
    Channel,
    Message,
    PermanentFailure,
    TemporaryFailure,
    channel_for,
    reset_channels,
)
from onetrip.clock import utcnow
from onetrip.ids import new_id
from onetrip.settings import reset_settings
from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401 (smtp_server)

Configure = Callable[..., Channel]  # (server or None, **environment) → the email channel

PDF = b"%PDF-1.4\n% a receipt\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"


def message(recipient: str = "zhang.san@example.org", **overrides: object) -> Message:
    fields: dict[str, object] = {
        "id": new_id("ntf"),
        "channel": "email",
        "recipient": recipient,
        "subject": "支付成功：营业执照变更 ¥1,234.50",
        "text": "张三，您好！您的付款已成功。查询进度：https://onetrip.example/track/t0k3n",
        "html": "<p style='color:#333'>张三，您好！<a href='https://onetrip.example/track/t0k3n'>查询进度</a></p>",
        "attachments": (Attachment("收据-R2026-0001.pdf", "application/pdf", PDF),),
        "language": "zh-CN",
    }
    fields.update(overrides)
    return Message(**fields)  # type: ignore[arg-type]


@pytest.fixture
def smtp(env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Configure]:
    """Point the settings at `server` and return its email channel."""
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/onetrip.db")

    def configure(server: SmtpServer | None, **variables: str) -> Channel:
        if server is not None:
            env.setenv("SMTP_URL", server.url)
        for name, value in variables.items():
            env.setenv(name, value)
        reset_settings()
        return channel_for("email")

    reset_channels()
    yield configure
    reset_channels()


async def test_an_email_arrives_with_its_headers_both_parts_and_the_receipt(
    smtp_server: SmtpServer, smtp: Configure
) -> None:
    channel = smtp(smtp_server, ONETRIP_EMAIL_FROM="一趟办 <notify@mail.onetrip.example>")
    sent_message = message()
    before = utcnow()
    sent = await channel.send(sent_message)

    [received] = await smtp_server.wait_for(1)
    mail = received.message
    assert received.mail_from == "notify@mail.onetrip.example"
    assert received.rcpt_tos == [sent_message.recipient]
    assert mail["Message-ID"] == f"<{sent_message.id}@mail.onetrip.example>"
    assert sent.provider_ref == mail["Message-ID"]
    assert sent.provider == "smtp:127.0.0.1"
    assert mail["From"].addresses[0].display_name == "一趟办"
    assert mail["From"].addresses[0].addr_spec == "notify@mail.onetrip.example"
    assert mail["To"] == sent_message.recipient
    assert mail["Subject"] == sent_message.subject  # decoded from RFC 2047: Chinese intact
    assert b"\xe6" not in received.raw.split(b"\r\n\r\n", 1)[0]  # headers are 7-bit
    date = parsedate_to_datetime(mail["Date"])
    assert before - timedelta(seconds=1) <= date <= utcnow() + timedelta(seconds=1)
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/mixed"
    assert received.body("plain") == sent_message.text + "\n"
    assert received.body("html") == sent_message.html + "\n"
    [pdf] = received.attachments
    assert pdf.get_filename() == "收据-R2026-0001.pdf"
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content() == PDF


async def test_a_text_only_email_is_a_single_part(smtp_server: SmtpServer, smtp: Configure) -> None:
    channel = smtp(smtp_server)
    await channel.send(message(html=None, attachments=(), subject="Paid", text="Hello"))
    [received] = await smtp_server.wait_for(1)
    assert received.message.get_content_type() == "text/plain"
    assert received.body() == "Hello\n"
    assert received.message["From"].addresses[0].addr_spec == "no-reply@onetrip.localhost"
    assert received.message["Message-ID"].endswith("@onetrip.localhost>")


async def test_auth_over_required_starttls(smtp: Configure) -> None:
    # The server refuses MAIL before STARTTLS and AUTH over plain TCP: arriving at all
    # proves the client upgraded and logged in.
    with SmtpServer(auth=("mailer", "s3cr:t/pw"), tls="starttls", require_starttls=True) as server:
        assert "starttls=required" in server.url
        channel = smtp(server)
        await channel.send(message())
        [received] = await server.wait_for(1)
        assert server.logins == ["mailer"]
        assert received.message["Subject"] == message().subject


async def test_required_starttls_not_offered_is_a_temporary_failure(smtp: Configure) -> None:
    with SmtpServer() as server:  # no TLS at all
        channel = smtp(None, SMTP_URL=server.url + "?starttls=required")
        with pytest.raises(TemporaryFailure, match=r"(?i)starttls"):
            await channel.send(message())
        assert server.messages == []


async def test_starttls_is_used_whenever_the_server_offers_it(smtp: Configure) -> None:
    with SmtpServer(auth=("mailer", "pw"), tls="starttls") as server:  # AUTH only over TLS
        assert "starttls" not in server.url
        await smtp(server).send(message())
        await server.wait_for(1)
        assert server.logins == ["mailer"]


async def test_smtps_implicit_tls(smtp: Configure) -> None:
    with SmtpServer(tls="implicit", auth=("mailer", "pw")) as server:
        assert server.url.startswith("smtps://")
        await smtp(server).send(message())
        await server.wait_for(1)


async def test_an_untrusted_certificate_is_a_temporary_failure(smtp: Configure) -> None:
    with SmtpServer(tls="implicit") as server:
        channel = smtp(None, SMTP_URL=f"smtps://{server.host}:{server.port}")  # no cafile
        with pytest.raises(TemporaryFailure, match=r"(?i)certificate"):
            await channel.send(message())
        assert server.messages == []


async def test_a_wrong_password_is_a_temporary_failure(smtp: Configure) -> None:
    with SmtpServer(auth=("mailer", "right")) as server:
        url = server.url.replace(":right@", ":wrong@")
        with pytest.raises(TemporaryFailure, match="login refused: 535"):
            await smtp(None, SMTP_URL=url).send(message())
        assert server.messages == []


@pytest.mark.parametrize(
    ("reply", "refuse_at", "outcome"),
    [
        ("550 5.1.1 No such user here", "rcpt", PermanentFailure),
        ("553 5.1.3 Bad recipient address syntax", "rcpt", PermanentFailure),
        ("450 4.2.0 Greylisted, try again later", "rcpt", TemporaryFailure),
        ("554 5.6.0 Message refused", "data", PermanentFailure),
        ("451 4.3.0 Local error", "data", TemporaryFailure),
        ("421 4.3.2 Service not available", "connect", TemporaryFailure),
        ("554 5.7.1 No SMTP service here", "connect", TemporaryFailure),  # not the recipient
        ("421 4.7.0 Too many connections", "ehlo", TemporaryFailure),
        ("553 5.7.1 Sender not allowed", "mail", TemporaryFailure),  # our configuration
    ],
)
async def test_a_refusing_server(
    smtp: Configure, reply: str, refuse_at: str, outcome: type
) -> None:
    with SmtpServer(refuse=reply, refuse_at=refuse_at) as server:
        with pytest.raises(outcome) as raised:
            await smtp(server).send(message())
        assert reply.split(" ", 1)[0] in raised.value.detail
        assert raised.value.provider == "smtp:127.0.0.1"
        assert server.messages == []


async def test_one_refused_recipient_does_not_stop_the_others(smtp: Configure) -> None:
    with SmtpServer(refuse_recipients={"gone@example.org": "550 5.1.1 Mailbox gone"}) as server:
        channel = smtp(server)
        with pytest.raises(PermanentFailure, match="550"):
            await channel.send(message("gone@example.org"))
        await channel.send(message("here@example.org"))
        [received] = await server.wait_for(1)
        assert received.rcpt_tos == ["here@example.org"]


@pytest.mark.parametrize("hang_at", ["connect", "data"])
async def test_a_silent_server_is_a_temporary_failure_within_the_timeout(
    smtp: Configure, hang_at: str
) -> None:
    with SmtpServer(hang_at=hang_at) as server:
        channel = smtp(server, ONETRIP_SMTP_TIMEOUT="0.5")
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="timed out"):
            await channel.send(message())
        assert time.monotonic() - started < 4.0  # the whole send is capped at 4 × the timeout
        assert server.messages == []


async def test_the_server_coming_back(smtp: Configure) -> None:
    with SmtpServer(refuse="421 4.3.2 Down for maintenance", refuse_at="connect") as server:
        channel = smtp(server)
        same = message()
        with pytest.raises(TemporaryFailure):
            await channel.send(same)
        server.refuse = None
        await channel.send(same)
        [received] = await server.wait_for(1)
        assert received.message["Message-ID"] == f"<{same.id}@onetrip.localhost>"


async def test_nobody_listening_is_a_temporary_failure(smtp: Configure) -> None:
    with SmtpServer() as server:
        url, port = server.url, server.port
    channel = smtp(None, SMTP_URL=url)  # that port is closed now
    same = message()
    with pytest.raises(TemporaryFailure):
        await channel.send(same)
    with SmtpServer(port=port) as back:  # the relay is back
        await channel.send(same)
        await back.wait_for(1)


@pytest.mark.parametrize(
    "recipient", ["", "no-at-sign", "two@@example.org", "a b@example.org", "x@y.org\r\nBcc: z@q"]
)
async def test_an_invalid_address_is_permanent_without_connecting(
    smtp_server: SmtpServer, smtp: Configure, recipient: str
) -> None:
    with pytest.raises(PermanentFailure, match="not an email address"):
        await smtp(smtp_server).send(message(recipient))
    assert smtp_server.connections == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.org", "smtp:// or smtps://"),
        ("smtp://", "no host"),
        ("smtp://mail.example.org?starttls=maybe", "starttls"),
        ("smtp://mail.example.org?tls=1", "unknown option"),
        ("smtps://mail.example.org?starttls=required", "TLS already"),
    ],
)
async def test_a_bad_smtp_url_holds_messages_back(smtp: Configure, url: str, problem: str) -> None:
    channel = smtp(None, SMTP_URL=url)
    with pytest.raises(TemporaryFailure, match=problem):
        await channel.send(message())


async def test_without_smtp_url_emails_are_written_to_the_outbox(
    smtp: Configure, tmp_path: Path
) -> None:
    channel = smtp(None)
    sent_message = message()
    sent = await channel.send(sent_message)
    path = tmp_path / "outbox" / "email" / f"{sent_message.id}.eml"
    assert sent.provider == "file" and sent.detail == str(path)
    mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert mail["Subject"] == sent_message.subject
    assert mail["Message-ID"] == sent.provider_ref
    [pdf] = list(mail.iter_attachments())  # type: ignore[attr-defined]
    assert pdf.get_content() == PDF
    await channel.send(sent_message)  # a resend overwrites the same file
    assert [p.name for p in path.parent.iterdir()] == [path.name]


async def test_one_channel_per_process_until_the_settings_change(
    smtp_server: SmtpServer, smtp: Configure
) -> None:
    first = smtp(smtp_server)
    assert channel_for("email") is first
    second = smtp(None, ONETRIP_SMTP_TIMEOUT="3")
    assert second is not first
    with pytest.raises(ValueError, match="no channel"):
        channel_for("fax")
