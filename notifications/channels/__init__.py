"""Channels: the one interface through which a notification leaves the service.

A caller (notifications' send actor and sweep) builds a `Message` and awaits
`channel_for(message.channel).send(message)`. It gets back a `Sent` (the provider took
the message) or one of two exceptions, and nothing else:

- `TemporaryFailure`: try again later (timeout, connection refused, SMTP 4xx or 421,
  HTTP 429/5xx, every SMS provider down). `retry_after` is the provider's hint in
  seconds, when it gave one.
- `PermanentFailure`: never retried (an invalid address, SMTP 5xx for the recipient,
  HTTP 4xx from the provider).

The message id (our "ntf_…") travels with every send, as the email's Message-ID and as
the SMS provider's `reference`: if a process dies after the provider accepted a message
but before we recorded it, the resend carries the same id and the receiver can drop it.

Which adapter `channel_for` returns depends on the settings:
- "email": SMTP (`SMTP_URL`, see `notifications.channels.email`), else a file adapter
  writing `.eml` files into `{data folder}/outbox/email/`.
- "sms": the HTTP providers of `ONETRIP_SMS_PROVIDERS` with failover (see
  `notifications.channels.sms`), else a file adapter appending to
  `{data folder}/outbox/sms.log`.
One channel per name and process (the SMS failover keeps its providers' health in it);
when the relevant settings change (tests), the next call builds a new one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "CHANNELS",
    "Attachment",
    "Channel",
    "Message",
    "MisconfiguredChannel",
    "PermanentFailure",
    "Sent",
    "TemporaryFailure",
    "channel_for",
    "reset_channels",
]

log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = ("email", "sms")


@dataclass(frozen=True)
class Attachment:
    """A file attached to an email (the receipt PDF)."""

    filename: str
    content_type: str  # "application/pdf"
    content: bytes


@dataclass(frozen=True)
class Message:
    """One notification to one recipient over one channel."""

    id: str  # our notification id ("ntf_…"): the Message-ID / the provider's reference
    channel: str  # "email" | "sms"
    recipient: str  # an email address or a phone number (E.164, "+86…")
    subject: str  # email only ("" for sms)
    text: str  # plain text (the SMS text for sms)
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    language: str = "zh-CN"


@dataclass(frozen=True)
class Sent:
    """The provider accepted the message.

    `provider` names who took it ("smtp:mail.example.org", "sms:a", "file"),
    `provider_ref` is its reference when it gives one (the Message-ID for email, the
    provider's message id for SMS), `detail` a short readable note (the server's reply).
    """

    provider: str
    provider_ref: str | None = None
    detail: str | None = None


class ChannelFailure(Exception):
    """Base of the two outcomes other than `Sent`; never raised itself."""

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.detail = detail


class TemporaryFailure(ChannelFailure):
    """Not sent this time; the same message may succeed later (retry with backoff)."""

    def __init__(self, provider: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(provider, detail)
        self.retry_after = retry_after


class PermanentFailure(ChannelFailure):
    """Never going to be sent as it is (bad address, refused recipient): do not retry."""


@runtime_checkable
class Channel(Protocol):
    """Sends one message; returns `Sent` or raises `TemporaryFailure`/`PermanentFailure`
    (any other exception is a bug in the adapter, not an outcome)."""

    name: str

    async def send(self, message: Message) -> Sent: ...


class MisconfiguredChannel:
    """A channel whose settings are wrong: every send is a TemporaryFailure (logged), so
    notifications wait for the operator to fix the configuration rather than be lost."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem

    async def send(self, message: Message) -> Sent:
        log.error("%s channel misconfigured, %s not sent: %s", self.name, message.id, self.problem)
        raise TemporaryFailure(f"{self.name}:misconfigured", self.problem)


_lock = threading.Lock()
_channels: dict[str, tuple[object, Channel]] = {}


def channel_for(name: str) -> Channel:
    """The process's channel for `name` ("email" or "sms"), built from the settings.

    Raises ValueError for another name (a notification with channel "none" is skipped,
    never sent).
    """
    from onetrip.settings import get_settings

    settings = get_settings()
    if name == "email":
        from notifications.channels.email import email_channel, email_config_key

        key: object = email_config_key(settings)
        build = email_channel
    elif name == "sms":
        from notifications.channels.sms import sms_channel, sms_config_key

        key = sms_config_key(settings)
        build = sms_channel
    else:
        raise ValueError(f"no channel {name!r} (channels: {', '.join(CHANNELS)})")
    with _lock:
        cached = _channels.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        channel = build(settings)
        _channels[name] = (key, channel)
        return channel


def reset_channels() -> None:
    """Forget the process's channels (and the SMS providers' health): tests."""
    with _lock:
        _channels.clear()
