"""Email: SMTP through aiosmtplib, or `.eml` files in embedded mode.

`SMTP_URL` (or ONETRIP_SMTP_URL):
- `smtp://[user:password@]host[:port]`: SMTP (port 25 by default; submission is
  usually 587) upgraded with STARTTLS whenever the server offers it;
  `?starttls=required` refuses to send without it, `?starttls=never` never upgrades.
- `smtps://[user:password@]host[:port]`: TLS from the first byte (port 465 by default).
- `?cafile=/path/ca.pem` trusts that CA for the server's certificate (else the system's);
  `?verify=false` skips certificate checks (a development relay only).
User and password are percent-decoded; AUTH is used only when a user is given.

Every email has From (ONETRIP_EMAIL_FROM), To, Subject (UTF-8, RFC 2047 encoded), Date
(onetrip.clock), `Message-ID: <ntf_…@from-domain>` (our notification id: a resend after
a crash carries the same Message-ID, so a receiver can drop the duplicate),
`Auto-Submitted: auto-generated` (no vacation replies) and Content-Language; the body is
multipart/alternative (text, and HTML when given) inside multipart/mixed when there are
attachments. Each SMTP step waits at most ONETRIP_SMTP_TIMEOUT seconds.

Outcomes: the server's 2xx → `Sent(provider="smtp:host", provider_ref=Message-ID)`.
The recipient refused with 5xx, or the message refused at DATA with 5xx, or an address
that is not one → `PermanentFailure`. Everything else (timeouts, refused or dropped
connections, TLS failures, 4xx greylisting, 421, a refused login or sender: problems of
the relay or our configuration, not of this message) → `TemporaryFailure`, so messages
wait for the relay (or the operator) instead of being given up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import aiosmtplib

from notifications.channels import (
    Channel,
    Message,
    MisconfiguredChannel,
    PermanentFailure,
    Sent,
    TemporaryFailure,
)
from notifications.channels.outbox import outbox_folder, write_atomically
from onetrip.clock import utcnow
from onetrip.settings import Settings
from onetrip.smtp import SmtpConfig, parse_smtp_url

log = logging.getLogger(__name__)

__all__ = [
    "FileEmailChannel",
    "SmtpConfig",
    "SmtpEmailChannel",
    "build_email",
    "email_channel",
    "is_email_address",
    "parse_smtp_url",
]

# One address, as a notification's recipient: local@domain, no display name, no spaces,
# no header-breaking characters; the domain made of dot-separated labels.
_ATOM = r"[^@\s<>()\[\],;:\\\"]"
_LABEL = r"[^@\s<>()\[\],;:\\\".]+"
_ADDRESS = re.compile(rf"^{_ATOM}+@({_LABEL}\.)*{_LABEL}$")


def is_email_address(value: str) -> bool:
    """Whether `value` is one bare address we can put in RCPT TO (no "Name <…>")."""
    return len(value) <= 254 and bool(_ADDRESS.match(value)) and ".." not in value


def sender(from_header: str) -> tuple[str, str, str]:
    """(display name, address, domain) of ONETRIP_EMAIL_FROM; ValueError when unusable."""
    name, address = parseaddr(from_header)
    if not is_email_address(address):
        raise ValueError(f"ONETRIP_EMAIL_FROM is not a usable address: {from_header!r}")
    return name, address, address.rsplit("@", 1)[1].lower()


# ----------------------------------------------------------------------- message


def message_id(notification_id: str, domain: str) -> str:
    """`<ntf_…@domain>`: the same for every attempt at one notification."""
    return f"<{notification_id}@{domain}>"


def _cte(text: str) -> str:
    # ASCII reads best quoted-printable; Chinese is a third smaller in base64.
    return "quoted-printable" if text.isascii() else "base64"


def build_email(message: Message, from_header: str) -> EmailMessage:
    """The RFC 5322 message for `message` (see the module docstring for its headers)."""
    name, address, domain = sender(from_header)
    mail = EmailMessage()
    mail["From"] = Address(display_name=name, addr_spec=address)
    mail["To"] = message.recipient
    mail["Subject"] = " ".join(message.subject.split())  # one line, whatever came in
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = message_id(message.id, domain)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text, charset="utf-8", cte=_cte(message.text))
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html", charset="utf-8", cte=_cte(message.html))
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mail.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    # Last: turning the message multipart moves the Content-* headers set before into
    # its first part.
    mail["Content-Language"] = message.language
    return mail


# -------------------------------------------------------------------------- SMTP


def _built(message: Message, from_header: str, provider: str) -> EmailMessage:
    """The email for `message`, or PermanentFailure when it cannot be one (an address
    that is not one; content no email can carry): sending it again would not help."""
    if not is_email_address(message.recipient):
        raise PermanentFailure(provider, f"not an email address: {message.recipient!r}")
    try:
        return build_email(message, from_header)
    except (ValueError, TypeError, LookupError) as error:
        raise PermanentFailure(provider, f"cannot build the email: {error}") from None


def _code_class(code: int) -> str:
    return "permanent" if 500 <= code < 600 else "temporary"


class SmtpEmailChannel:
    """Sends each message over its own SMTP connection (nothing kept between sends, so
    any event loop or thread may call it)."""

    name = "email"

    def __init__(self, config: SmtpConfig, from_header: str) -> None:
        sender(from_header)  # refuse a bad From now, not at every send
        self.config = config
        self.from_header = from_header

    async def send(self, message: Message) -> Sent:
        provider = self.config.provider
        mail = _built(message, self.from_header, provider)
        _, from_address, domain = sender(self.from_header)
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.implicit_tls,
            start_tls={"auto": None, "required": True, "never": False}[config.starttls]
            if not config.implicit_tls
            else False,
            validate_certs=config.verify,
            tls_context=config.tls_context(),
            timeout=config.timeout,
            local_hostname=domain,
        )
        try:
            # Each step is bounded by the timeout; the whole exchange by a few of them
            # (connect, TLS, AUTH, MAIL, RCPT, DATA), so a server trickling bytes
            # cannot hold a worker for long either.
            async with asyncio.timeout(config.timeout * 4):
                async with client:
                    _, reply = await client.send_message(
                        mail, sender=from_address, recipients=[message.recipient]
                    )
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusal = error.recipients[0] if error.recipients else None
            code = refusal.code if refusal else 550
            detail = f"recipient refused: {code} {refusal.message if refusal else ''}".strip()
            if _code_class(code) == "permanent":
                raise PermanentFailure(provider, detail) from None
            raise TemporaryFailure(provider, detail) from None
        except aiosmtplib.SMTPDataError as error:
            detail = f"message refused: {error.code} {error.message}"
            if _code_class(error.code) == "permanent":
                raise PermanentFailure(provider, detail) from None
            raise TemporaryFailure(provider, detail) from None
        except aiosmtplib.SMTPAuthenticationError as error:
            log.error("SMTP login to %s refused: %s %s", config.host, error.code, error.message)
            raise TemporaryFailure(provider, f"login refused: {error.code}") from None
        except aiosmtplib.SMTPSenderRefused as error:
            log.error("SMTP %s refused our sender: %s %s", config.host, error.code, error.message)
            detail = f"sender refused: {error.code} {error.message}"
            raise TemporaryFailure(provider, detail) from None
        except aiosmtplib.SMTPResponseException as error:  # greeting, EHLO, STARTTLS, …
            raise TemporaryFailure(provider, f"server said {error.code} {error.message}") from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            raise TemporaryFailure(
                provider, f"timed out (ONETRIP_SMTP_TIMEOUT={config.timeout:g} s)"
            ) from None
        except aiosmtplib.SMTPNotSupported as error:
            if not message.recipient.isascii() and "SMTPUTF8" in str(error).upper():
                # an internationalised address this relay cannot carry, today or later
                raise PermanentFailure(provider, f"not supported by the server: {error}") from None
            raise TemporaryFailure(provider, f"not supported by the server: {error}") from None
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as error:
            raise TemporaryFailure(provider, f"{type(error).__name__}: {error}") from None
        return Sent(provider=provider, provider_ref=mail["Message-ID"], detail=reply)


# -------------------------------------------------------------------------- file


class FileEmailChannel:
    """Embedded mode: writes `{folder}/{ntf id}.eml` (a resend overwrites the same file)
    and logs one line; every message is "sent"."""

    name = "email"

    def __init__(self, folder: Path, from_header: str) -> None:
        sender(from_header)
        self.folder = folder
        self.from_header = from_header

    async def send(self, message: Message) -> Sent:
        mail = _built(message, self.from_header, "file")
        path = self.folder / f"{message.id}.eml"
        content = mail.as_bytes()
        await asyncio.to_thread(write_atomically, path, content)
        log.info(
            "email %s to %s (%r, %d attachment(s)) written to %s (no SMTP_URL)",
            message.id,
            message.recipient,
            message.subject,
            len(message.attachments),
            path,
        )
        return Sent(provider="file", provider_ref=mail["Message-ID"], detail=str(path))


def email_config_key(settings: Settings) -> object:
    """What the email channel is built from (channel_for rebuilds when it changes)."""
    return (settings.smtp_url, settings.email_from, settings.smtp_timeout, outbox_folder(settings))


def email_channel(settings: Settings) -> Channel:
    """SMTP when SMTP_URL is set, else the `.eml` file adapter."""
    try:
        if settings.smtp_url:
            config = parse_smtp_url(settings.smtp_url, timeout=settings.smtp_timeout)
            return SmtpEmailChannel(config, settings.email_from)
        return FileEmailChannel(outbox_folder(settings) / "email", settings.email_from)
    except ValueError as error:
        return MisconfiguredChannel("email", str(error))
