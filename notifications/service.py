"""Notifications: created exactly once in the event's unit of work, sent after commit.

Creating. The applicant consumer (`notify_applicant`) turns an outbox event that a
trigger names (`notifications.triggers`) into one row per channel the applicant can be
reached on (email and/or phone; neither: one row on channel "none", status "skipped"),
rendered in the applicant's language. Departments get emails through
`queue_department_email`, keyed by the caller. Rows are unique on (event_id, channel,
recipient), so an event or job that arrives again creates nothing new, even without
the consumer's consumption mark.

Sending. Nothing is sent inside a transaction: the sweep (`queue_due`, every second)
hands due rows to the send actor, which calls `attempt_notification`. That claims the
row by a conditional UPDATE moving `next_attempt_at` ahead by a lease (no second worker
can claim it meanwhile), hands the message to its channel (`notifications.channels`)
and records the attempt in a second short transaction, only if the claim is still
ours. A TemporaryFailure is retried after about 30 s, 2 min, 10 min, 1 h, 6 h, then
every 6 h, until 24 h after the notification was created (then it has failed); a
PermanentFailure fails it at once.

In order. A licence's steps (printed, dispatched, out for delivery, …: the triggers'
`licence_step`) reach each recipient in the order they happened, whichever worker
takes which: a step whose later step was sent (or is being sent) is skipped as out of
date, and a step waits while an earlier one is being sent (`_in_step_order`).

Not history. Events published before notifying was switched on (the first deploy
with this consumer) tell nobody, though the kernel resends up to a day of events a
consumer has not applied (`switched_on_at`, `SWITCH_ON_GRACE`).

At most one resend. A worker that dies after the provider accepted a message and
before the outcome was recorded leaves the row claimed; once the lease runs out the
sweep sends it again. The resend carries the same id: the email's Message-ID is
`<ntf_…@…>` and the SMS provider's `reference` is `ntf_…`, so a receiver (or the
provider) can drop the duplicate.

Timeline. Each notification that is sent, fails for good or is skipped records an
outbox event `notification.sent` / `notification.failed` / `notification.skipped`
with its payment id, in the same transaction as the change: the payment's timeline
(`GET /api/v1/payments/{id}/events`) shows it. The event carries no message body and
the recipient masked.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import CourierPartner, License
from notifications import messages
from notifications.channels import (
    Attachment,
    Message,
    PermanentFailure,
    TemporaryFailure,
    channel_for,
)
from notifications.channels.sms import normalize_phone
from notifications.models import Channel, Notification, NotificationAttempt, NotificationStatus
from notifications.schemas import NotificationAttemptView, NotificationView
from notifications.triggers import LICENCE_STEP_KINDS, trigger_for
from onetrip import leases, outbox
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.consumers import Event
from onetrip.db import insert_ignoring_conflicts, unit_of_work
from onetrip.errors import Conflict
from onetrip.i18n import DEFAULT_LANGUAGE
from onetrip.ids import new_id
from onetrip.outbox import ConsumedEvent, OutboxEvent, first_consumption
from onetrip.pagination import envelope, page
from payments.models import Department, Payment
from payments.queries import get_readable_payment
from payments.reasons import reason_message
from payments.receipts import current_receipt
from payments.views import payment_urls

log = logging.getLogger(__name__)

NOTIFICATIONS = Notification.__table__
ATTEMPTS = NotificationAttempt.__table__

#: Delays after failed attempts 1–5, then every 6 hours, each ±15 % (receivers that
#: failed together are not retried in lock step); a provider's Retry-After longer than
#: the delay wins.
RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
)
THEN_EVERY = timedelta(hours=6)
JITTER = 0.15
#: A notification still not sent this long after it was created has failed: news of a
#: payment or a parcel a day late is worth less than a clear "failed" to look into.
GIVE_UP_AFTER = timedelta(hours=24)
#: A claimed attempt is the claimant's this long (longer than any channel's timeouts,
#: SMS failover included); after it a crashed worker's notification is due again.
LEASE = timedelta(minutes=5)
#: A notification handed to the queue is not handed out again for this long (lost
#: messages are recovered after it; a backlog does not fill the queue with copies).
REQUEUE_AFTER = timedelta(seconds=60)

ATTACH_RECEIPT = "receipt"

#: The moment notifying applicants was switched on (the first deploy with this
#: consumer) is kept as a consumption mark of its own, written by the first event the
#: applicant consumer ever handles (`switched_on_at`).
SWITCHED_ON_MARK = ("notifications.applicant:switched-on", "first-event")
#: Events published up to this long before that moment still tell the applicant (they
#: were on their way while the workers started); older ones are history from before
#: notifications existed, which the kernel's resend of unconsumed events would
#: otherwise hand over (up to a day of it): they are marked consumed and tell nobody.
#: (So the first deploy starts the "notifications" workers with the relay: a backlog
#: that waited longer than this for its first worker would be taken for history.)
SWITCH_ON_GRACE = timedelta(minutes=5)
#: A licence step's message whose earlier step is being sent waits this long, then looks
#: again (so the applicant reads them in order).
WAIT_FOR_EARLIER_STEP = timedelta(seconds=5)


class Outcome(enum.StrEnum):
    """What an attempt meant for its notification (notification_attempts.outcome)."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


# --- creating -------------------------------------------------------------------------


def mask_recipient(channel: str, recipient: str) -> str:
    """The recipient as the timeline shows it: `z***@example.cn`, `138****8000`."""
    if channel == Channel.EMAIL:
        local, at, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}" if at else "***"
    if channel == Channel.SMS:
        return f"{recipient[:-8]}****{recipient[-4:]}" if len(recipient) >= 8 else "****"
    return ""


def sms_number(phone: str) -> str:
    """A phone number as SMS providers take it (E.164, "+8613800138000"); one that
    cannot be an SMS number stays as given (its channel refuses it, recorded)."""
    return normalize_phone(phone) or phone


def applicant_language(applicant: Mapping[str, Any]) -> str:
    """The language the applicant is written to in (zh-CN unless recorded as English)."""
    return messages.language_of(applicant.get("language"))


def applicant_channels(applicant: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(channel, recipient) for every way the applicant can be reached: email, SMS."""
    found: list[tuple[str, str]] = []
    email = (applicant.get("email") or "").strip()
    if email:
        found.append((Channel.EMAIL, email))
    phone = (applicant.get("phone") or "").strip()
    if phone:
        found.append((Channel.SMS, sms_number(phone)))
    return found


@dataclass(frozen=True)
class Cause:
    """Why notifications are created: the event (or caller's key) and whom it is about."""

    event_id: str
    event_type: str | None
    kind: str
    payment_id: str | None
    department: str | None
    language: str
    attachment: str | None = None
    #: recorded as the skipped row's last_error when there is nobody to send it to
    nobody: str = "no email address or phone number to send it to"


async def create_notifications(
    session: AsyncSession,
    cause: Cause,
    recipients: list[tuple[str, str]],
    context: Mapping[str, Any],
) -> list[str]:
    """Add one notification per (channel, recipient) in the caller's transaction, or
    one skipped row (channel "none") when there is nobody; returns the ids of the rows
    added now (none for a replay of the same cause)."""
    now = utcnow()
    rendered = messages.render(cause.kind, cause.language, context)
    created: list[str] = []
    for channel, recipient in recipients or [(Channel.NONE, "")]:
        notification_id = new_id("ntf")
        skipped = channel == Channel.NONE
        values: dict[str, Any] = {
            "id": notification_id,
            "event_id": cause.event_id,
            "event_type": cause.event_type,
            "kind": cause.kind,
            "channel": channel,
            "recipient": recipient,
            "payment_id": cause.payment_id,
            "department": cause.department,
            "language": cause.language,
            "status": NotificationStatus.SKIPPED if skipped else NotificationStatus.PENDING,
            "subject": "" if channel == Channel.SMS else rendered.subject[:500],
            "text": rendered.sms if channel == Channel.SMS else rendered.text,
            "html": rendered.html if channel == Channel.EMAIL else None,
            "attachment": cause.attachment if channel == Channel.EMAIL else None,
            "attempts": 0,
            "next_attempt_at": None if skipped else now,
            "created_at": now,
            "finished_at": now if skipped else None,
            "last_error": cause.nobody if skipped else None,
        }
        stmt = (
            insert_ignoring_conflicts(session, NOTIFICATIONS, ["event_id", "channel", "recipient"])
            .values(**values)
            .returning(NOTIFICATIONS.c.id)
        )
        if (await session.execute(stmt)).first() is None:
            continue  # this cause was notified before: a replay adds nothing
        created.append(notification_id)
        if skipped:
            await _record_final_event(session, "notification.skipped", values, error=None)
    return created


async def notify_applicant(session: AsyncSession, event: Event) -> list[str]:
    """Create the applicant's notifications of `event` (a trigger's), in the caller's
    unit of work; returns the ids created (none: no trigger matches, no such payment,
    an event from before notifications were switched on, or a replay)."""
    trigger = trigger_for(event.type, event.data)
    payment_id = event.payment_id or event.data.get("payment_id")
    if trigger is None or not payment_id:
        return []
    if await _before_switch_on(session, event):
        log.info("%s %s: from before notifications were switched on", event.type, event.id)
        return []
    payment = await session.get(Payment, payment_id)
    if payment is None:
        log.warning("%s %s: no payment %s to notify about", event.type, event.id, payment_id)
        return []
    applicant = payment.applicant or {}
    language = applicant_language(applicant)
    context = await applicant_context(session, payment, event, language)
    cause = Cause(
        event_id=event.id,
        event_type=event.type,
        kind=trigger.kind,
        payment_id=payment.id,
        department=payment.department,
        language=language,
        attachment=ATTACH_RECEIPT if trigger.attach_receipt else None,
    )
    return await create_notifications(session, cause, applicant_channels(applicant), context)


async def switched_on_at(session: AsyncSession) -> datetime:
    """When notifying applicants was switched on: recorded (in the caller's unit of
    work) by the first call ever, read by every later one."""
    marks = ConsumedEvent.__table__
    consumer, key = SWITCHED_ON_MARK
    stmt = select(marks.c.consumed_at).where(marks.c.consumer == consumer, marks.c.event_id == key)
    found = (await session.execute(stmt)).scalar()
    if found is None:
        await first_consumption(session, consumer, key)  # a racing first call: one wins
        found = (await session.execute(stmt)).scalar_one()
    return found  # type: ignore[no-any-return]


async def _before_switch_on(session: AsyncSession, event: Event) -> bool:
    # When the relay published it: the resend of the kernel picks published events
    # only. Not its occurred_at, which for a parcel is the courier's clock, perhaps
    # hours back; not yet marked published: the relay is handing it over right now.
    events = OutboxEvent.__table__
    published_at = (
        await session.execute(select(events.c.published_at).where(events.c.id == event.id))
    ).scalar()
    if published_at is None:
        return False
    return bool(published_at < await switched_on_at(session) - SWITCH_ON_GRACE)


async def applicant_context(
    session: AsyncSession, payment: Payment, event: Event, language: str
) -> dict[str, Any]:
    """What the templates may say about `event` (the keys of `notifications.messages`);
    keys that do not apply are left out."""
    data = event.data
    tracking_url = payment_urls(payment.token)["tracking_url"]
    department = await session.get(Department, payment.department)
    context: dict[str, Any] = {
        "applicant_name": (payment.applicant or {}).get("name"),
        "department_name": department.name if department else payment.department,
        "matter_name": payment.matter_name,
        "reference": payment.reference,
        "payment_id": payment.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "tracking_url": tracking_url,
        "rating_url": f"{tracking_url}#rating",
        "occurred_at": _moment(data.get("occurred_at")) or event.occurred_at,
        "timezone": department.timezone if department else None,
    }
    if event.type == "payment.failed":
        context["failure_reason"] = reason_message(payment.failure_reason, language)
    if event.type.startswith("refund."):
        context["refund_amount"] = data.get("amount")
        context["amount_refunded"] = data.get("amount_refunded", payment.amount_refunded)
        context["refund_status"] = data.get("refund_status", payment.refund_status)
    if "license_no" in data:
        context["license_no"] = data["license_no"]
        context["license_title"] = data.get("title")
    elif data.get("license_id"):
        license = await session.get(License, data["license_id"])
        if license is not None:
            context["license_no"] = license.license_no
            context["license_title"] = license.title
    if data.get("tracking_number"):
        context["tracking_number"] = data["tracking_number"]
    if data.get("partner"):
        partner = await session.get(CourierPartner, data["partner"])
        context["partner_name"] = partner.name if partner else data["partner"]
    for key in ("location", "failed_attempts"):
        if data.get(key) is not None:
            context[key] = data[key]
    return {key: value for key, value in context.items() if value is not None}


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


async def queue_department_email(
    session: AsyncSession, *, key: str, department: str, kind: str, context: dict[str, Any]
) -> str | None:
    """Queue an email of `kind` to `department`'s contact (Department.contact_email), in
    the caller's transaction, sent by the same machinery as the applicants' (after
    commit, with retries). Exactly once per `key` (kept as the event id, at most 200
    characters): returns the new notification's id, or None when this key was queued
    before. A department without a contact email gets a skipped row (its id returned)."""
    row = await session.get(Department, department)
    contact = (row.contact_email or "").strip() if row else ""
    full_context = {
        "department_name": row.name if row else department,
        "timezone": row.timezone if row else None,
        **context,
    }
    cause = Cause(
        event_id=key,
        event_type=None,
        kind=kind,
        payment_id=None,
        department=department,
        language=DEFAULT_LANGUAGE,
        nobody=f"department {department} has no contact email",
    )
    recipients = [(Channel.EMAIL.value, contact)] if contact else []
    created = await create_notifications(session, cause, recipients, full_context)
    return created[0] if created else None


# --- the sweep: hand due notifications to workers --------------------------------------


async def queue_due(limit: int = 500) -> list[str]:
    """Mark up to `limit` due notifications as queued and return their ids (oldest due
    first), for the caller to send to the send actor once this has committed."""
    return await leases.queue_due(
        NOTIFICATIONS,
        pending=NotificationStatus.PENDING,
        requeue_after=REQUEUE_AFTER,
        limit=limit,
    )


# --- one attempt ----------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did: its number, outcome (sent | retry | failed), provider,
    error, and when the next attempt is due (retry only)."""

    number: int
    outcome: str
    provider: str | None
    error: str | None
    retry_at: datetime | None


async def _claim(notification_id: str) -> Any:
    """Take the due attempt of a pending notification (its row, attempts counted), or
    None: not due, another worker's, or a licence step out of order (`_in_step_order`)."""
    now = utcnow()
    async with unit_of_work() as session:
        row = (
            await session.execute(
                select(NOTIFICATIONS).where(
                    NOTIFICATIONS.c.id == notification_id,
                    NOTIFICATIONS.c.status == NotificationStatus.PENDING,
                    NOTIFICATIONS.c.next_attempt_at <= now,
                )
            )
        ).first()
        if row is None:
            return None
        if (
            row.kind in LICENCE_STEP_KINDS
            and row.payment_id
            and not await _in_step_order(session, row, now)
        ):
            return None
        claim = leases.claim(
            NOTIFICATIONS,
            notification_id,
            pending=NotificationStatus.PENDING,
            now=now,
            lease=LEASE,
        ).returning(*NOTIFICATIONS.c)
        return (await session.execute(claim)).first()


async def _in_step_order(session: AsyncSession, row: Any, now: datetime) -> bool:
    """Whether the licence step `row` may be attempted now, in the claim's transaction.

    Of the payment's licence-step messages to the same recipient on the same channel,
    ordered by their causing events (outbox ids sort by when they were recorded, and a
    licence's steps are recorded in the order they happened): one whose later step was
    sent, or is being sent, is out of date and is skipped, never sent after it; one
    whose earlier step is being sent waits a few seconds. Locking those rows (in id
    order) serialises the decision between workers.
    """
    stream = (
        await session.execute(
            select(
                NOTIFICATIONS.c.id,
                NOTIFICATIONS.c.event_id,
                NOTIFICATIONS.c.kind,
                NOTIFICATIONS.c.status,
                NOTIFICATIONS.c.attempts,
                NOTIFICATIONS.c.next_attempt_at,
            )
            .where(
                NOTIFICATIONS.c.payment_id == row.payment_id,
                NOTIFICATIONS.c.channel == row.channel,
                NOTIFICATIONS.c.recipient == row.recipient,
                NOTIFICATIONS.c.kind.in_(LICENCE_STEP_KINDS),
            )
            .order_by(NOTIFICATIONS.c.id)
            .with_for_update()
        )
    ).all()
    me = next((r for r in stream if r.id == row.id), None)
    if me is None or me.status != NotificationStatus.PENDING or me.next_attempt_at > now:
        return False  # taken or finished meanwhile
    leased = [
        r
        for r in stream
        if r.id != me.id
        and r.status == NotificationStatus.PENDING
        and r.attempts > 0
        and r.next_attempt_at is not None
        and r.next_attempt_at > now
    ]
    sending: set[str] = set()
    if leased:  # claimed and not yet recorded: being sent (a retry's wait is recorded)
        found = await session.execute(
            select(ATTEMPTS.c.notification_id, ATTEMPTS.c.number).where(
                ATTEMPTS.c.notification_id.in_([r.id for r in leased])
            )
        )
        recorded = {(notification_id, number) for notification_id, number in found}
        sending = {r.id for r in leased if (r.id, r.attempts) not in recorded}
    later = [
        r
        for r in stream
        if r.event_id > me.event_id and (r.status == NotificationStatus.SENT or r.id in sending)
    ]
    if later:
        error = f"out of date: the later {later[-1].kind} was sent first ({later[-1].id})"
        values = {
            "status": NotificationStatus.SKIPPED,
            "next_attempt_at": None,
            "queued_at": None,
            "finished_at": now,
            "last_error": error,
        }
        await session.execute(
            update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == me.id).values(**values)
        )
        await _record_final_event(session, "notification.skipped", row._mapping, error=error)
        log.info("notification %s: %s", me.id, error)
        return False
    if any(r.event_id < me.event_id and r.id in sending for r in stream):
        await session.execute(
            update(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.id == me.id)
            .values(next_attempt_at=now + WAIT_FOR_EARLIER_STEP, queued_at=None)
        )
        return False
    return True


async def _attachments(row: Any) -> tuple[Any, ...]:
    if row.attachment != ATTACH_RECEIPT or not row.payment_id:
        return ()
    # A short unit of work of its own: a missing or stale receipt is drawn and kept now.
    async with unit_of_work() as session:
        payment = await session.get(Payment, row.payment_id)
        if payment is None:
            return ()
        try:
            pdf = await current_receipt(session, payment)
        except Conflict:  # no longer succeeded (e.g. under review): no receipt to attach
            return ()
        filename = f"receipt-{payment.id}.pdf"
    return (Attachment(filename=filename, content_type="application/pdf", content=pdf),)


async def attempt_notification(notification_id: str) -> AttemptResult | None:
    """Make the next attempt of a due notification and record it; None if it was not
    due (sent, failed or skipped already, not yet time, or another worker has it).

    Never raises for what a channel or provider does: every outcome is recorded.
    """
    claimed = await _claim(notification_id)
    if claimed is None:
        return None
    started_at = utcnow()
    clock = time.monotonic()
    provider: str | None = None
    provider_ref: str | None = None
    retry_after: float | None = None
    error: str | None = None
    try:
        message = Message(
            id=claimed.id,
            channel=claimed.channel,
            recipient=claimed.recipient,
            subject=claimed.subject,
            text=claimed.text,
            html=claimed.html,
            attachments=await _attachments(claimed),
            language=claimed.language,
        )
        sent = await channel_for(claimed.channel).send(message)
        outcome = Outcome.SENT
        provider, provider_ref = sent.provider, sent.provider_ref
    except PermanentFailure as failure:
        outcome, provider, error = Outcome.FAILED, failure.provider, failure.detail
    except TemporaryFailure as failure:
        outcome, provider, error = Outcome.RETRY, failure.provider, failure.detail
        retry_after = failure.retry_after
    except Exception as exc:  # an adapter's bug, a receipt not drawn: retried, never lost
        log.exception("notification %s: sending raised", notification_id)
        outcome, error = Outcome.RETRY, f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - clock) * 1000)
    return await _record(
        claimed, started_at, duration_ms, outcome, provider, provider_ref, error, retry_after
    )


def next_attempt_at(
    attempt: int,
    *,
    now: datetime,
    created_at: datetime,
    retry_after: float | None = None,
    uniform: Any = random.uniform,
) -> datetime | None:
    """When to try again after failed attempt number `attempt` (1-based) at `now`; None
    when that would be more than 24 h after the notification was created (give up)."""
    base = RETRY_DELAYS[attempt - 1] if attempt <= len(RETRY_DELAYS) else THEN_EVERY
    delay = base * uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, timedelta(seconds=min(retry_after, 86_400)))
    at = now + delay
    return None if at > created_at + GIVE_UP_AFTER else at


async def _record(
    claimed: Any,
    started_at: datetime,
    duration_ms: int,
    outcome: str,
    provider: str | None,
    provider_ref: str | None,
    error: str | None,
    retry_after: float | None,
) -> AttemptResult:
    now = utcnow()
    error = error[:500] if error else None  # the columns' widths
    provider = provider[:64] if provider else None
    retry_at = None
    if outcome == Outcome.RETRY:
        retry_at = next_attempt_at(
            claimed.attempts, now=now, created_at=claimed.created_at, retry_after=retry_after
        )
        if retry_at is None:
            outcome = Outcome.FAILED
            error = (f"gave up after 24 hours: {error}" if error else "gave up after 24 hours")[
                :500
            ]
    values: dict[str, Any] = {"queued_at": None, "last_error": error, "provider": provider}
    if outcome == Outcome.RETRY:
        values["next_attempt_at"] = retry_at
    elif outcome == Outcome.SENT:
        values.update(
            status=NotificationStatus.SENT,
            next_attempt_at=None,
            sent_at=now,
            finished_at=now,
            provider_ref=provider_ref[:200] if provider_ref else None,
            last_error=None,
        )
    else:
        values.update(status=NotificationStatus.FAILED, next_attempt_at=None, finished_at=now)
    async with unit_of_work() as session:
        await session.execute(
            ATTEMPTS.insert().values(
                notification_id=claimed.id,
                number=claimed.attempts,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=outcome,
                provider=provider,
                error=error,
            )
        )
        # Only while the claim is still ours: a lease that ran out was taken over.
        result = await session.execute(
            leases.still_ours(
                NOTIFICATIONS,
                claimed.id,
                pending=NotificationStatus.PENDING,
                attempts=claimed.attempts,
            ).values(**values)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            log.warning(
                "notification %s attempt %s: finished or reclaimed meanwhile",
                claimed.id,
                claimed.attempts,
            )
        elif outcome != Outcome.RETRY:
            final = {**claimed._mapping, "attempts": claimed.attempts, "provider": provider}
            event_type = "notification.sent" if outcome == Outcome.SENT else "notification.failed"
            await _record_final_event(session, event_type, final, error=error)
    log.info(
        "notification %s attempt %s over %s: %s%s",
        claimed.id,
        claimed.attempts,
        claimed.channel,
        outcome,
        f" ({error})" if error else "",
    )
    return AttemptResult(
        number=claimed.attempts,
        outcome=outcome,
        provider=provider,
        error=error,
        retry_at=retry_at,
    )


async def _record_final_event(
    session: AsyncSession, event_type: str, row: Mapping[str, Any], *, error: str | None
) -> None:
    data: dict[str, Any] = {
        "notification_id": row["id"],
        "kind": row["kind"],
        "channel": row["channel"],
        "recipient": mask_recipient(row["channel"], row["recipient"]),
        "cause_event_id": row["event_id"],
        "attempts": row.get("attempts", 0),
    }
    if row.get("provider"):
        data["provider"] = row["provider"]
    if error or row.get("last_error"):
        data["error"] = error or row.get("last_error")
    await outbox.record_event(
        session,
        event_type,
        data,
        payment_id=row.get("payment_id"),
        subject_id=row["id"],
        department=row.get("department"),
    )


# --- reading ----------------------------------------------------------------------------


async def payment_notifications(
    session: AsyncSession,
    principal: Principal,
    payment_id: str,
    *,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The notifications of a payment the key may read (else NotFound), newest first,
    each with its attempts oldest first: `{"data": [...], "next_cursor": ...}`."""
    await get_readable_payment(session, principal, payment_id)
    stmt = page(
        select(NOTIFICATIONS).where(NOTIFICATIONS.c.payment_id == payment_id),
        NOTIFICATIONS.c.id,
        cursor,
        limit,
        prefix="ntf",
    )
    rows = (await session.execute(stmt)).all()
    attempts: dict[str, list[NotificationAttemptView]] = {row.id: [] for row in rows}
    if rows:
        found = await session.execute(
            select(ATTEMPTS)
            .where(ATTEMPTS.c.notification_id.in_(list(attempts)))
            .order_by(ATTEMPTS.c.notification_id, ATTEMPTS.c.number)
        )
        for attempt in found:
            attempts[attempt.notification_id].append(
                NotificationAttemptView(
                    number=attempt.number,
                    started_at=attempt.started_at,
                    duration_ms=attempt.duration_ms,
                    outcome=attempt.outcome,
                    provider=attempt.provider,
                    error=attempt.error,
                )
            )
    records = [
        NotificationView(
            id=row.id,
            channel=row.channel,
            recipient=row.recipient,
            event=row.event_type,
            event_id=row.event_id,
            kind=row.kind,
            status=row.status,
            created_at=row.created_at,
            sent_at=row.sent_at,
            last_error=row.last_error,
            attempts=attempts[row.id],
        )
        for row in rows
    ]
    return envelope(records, limit, id_of=lambda record: record.id)
