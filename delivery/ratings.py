"""Applicants' satisfaction ratings: one per payment, once its licence reached them.

The applicant rates on the tracking page (their token is the capability), after the
licence was delivered or collected; departments, their finance staff and admins read a
department's count, average and distribution over a period. Ratings live in delivery
because they are about the delivered service and the track page is delivery's (and
delivery may not import notifications, which invites the rating).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import License, SatisfactionRating
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.ids import new_id
from onetrip.outbox import record_event
from onetrip.textrules import free_text_problem
from payments.models import Department, Payment

SCORES = range(1, 6)
MAX_COMMENT_LENGTH = 500
#: the licence statuses after which the applicant has had the service and may rate it
RATEABLE_STATUSES = ("delivered", "collected")
#: the outbox event a rating records (it shows on the payment's timeline)
RATED_EVENT = "satisfaction.rated"


class NotDeliveredYet(Conflict):
    code = "not_delivered_yet"
    title = "The service can be rated once the licence is delivered or collected"


class AlreadyRated(Conflict):
    code = "already_rated"
    title = "This payment's service has already been rated"


@dataclass(frozen=True)
class Satisfaction:
    """A department's ratings over [start, end): count, mean score (None without any
    rating) and how many of each score 1..5."""

    department: str
    start: datetime | None
    end: datetime | None
    count: int
    average: float | None
    distribution: dict[str, int]


def check_rating(score: object, comment: object) -> tuple[int, str | None]:
    """(score, comment) as stored, or ValidationFailed (422) naming each bad field.

    The score is a whole number 1..5 (not a bool, not text); the comment is optional
    free text of at most 500 characters, trimmed, and empty means none."""
    errors: list[dict[str, str]] = []
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        errors.append({"field": "score", "message": "must be a whole number from 1 to 5"})
    text: str | None = None
    if comment is not None:
        if not isinstance(comment, str):
            errors.append({"field": "comment", "message": "must be text"})
        else:
            text = comment.strip() or None
            problem = free_text_problem(text) if text else None
            if problem:
                errors.append({"field": "comment", "message": problem})
            elif text and len(text) > MAX_COMMENT_LENGTH:
                errors.append(
                    {
                        "field": "comment",
                        "message": f"must be at most {MAX_COMMENT_LENGTH} characters",
                    }
                )
    if errors:
        raise ValidationFailed(
            f"the rating is not valid: {errors[0]['field']} {errors[0]['message']}",
            code="invalid_rating",
            errors=errors,
        )
    return score, text  # type: ignore[return-value]  # checked above


async def rating_of(session: AsyncSession, payment_id: str) -> SatisfactionRating | None:
    """The payment's rating, if the applicant gave one."""
    stmt = select(SatisfactionRating).where(SatisfactionRating.payment_id == payment_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def rateable_license(session: AsyncSession, payment_id: str) -> License | None:
    """The payment's newest licence that reached the applicant (delivered or
    collected), or None while none has."""
    stmt = (
        select(License)
        .where(License.payment_id == payment_id, License.status.in_(RATEABLE_STATUSES))
        .order_by(License.created_at.desc(), License.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def rate_service(
    session: AsyncSession, payment: Payment, *, score: object, comment: object = None
) -> SatisfactionRating:
    """Record the applicant's rating of `payment`'s service, in the caller's unit of work.

    Raises ValidationFailed (bad score or comment), NotDeliveredYet (no licence of the
    payment delivered or collected yet) or AlreadyRated (one exists; also when two
    requests race: the unique payment_id decides, without aborting the transaction).
    Records `satisfaction.rated` (score, no comment text) on the payment's timeline.
    """
    score, text = check_rating(score, comment)
    license = await rateable_license(session, payment.id)
    if license is None:
        raise NotDeliveredYet("the service can be rated once the licence is delivered or collected")
    table = SatisfactionRating.__table__
    values = {
        "id": new_id("rat"),
        "payment_id": payment.id,
        "department": payment.department,
        "license_id": license.id,
        "score": score,
        "comment": text,
        "created_at": utcnow(),
    }
    inserted = (
        await session.execute(
            insert_ignoring_conflicts(session, table, ["payment_id"])
            .values(values)
            .returning(table.c.id)
        )
    ).first()
    if inserted is None:
        raise AlreadyRated("this payment's service has already been rated; thank you")
    await record_event(
        session,
        RATED_EVENT,
        {
            "rating_id": values["id"],
            "payment_id": payment.id,
            "license_id": license.id,
            "department": payment.department,
            "score": score,
            "has_comment": text is not None,
        },
        payment_id=payment.id,
        subject_id=values["id"],
        department=payment.department,
        occurred_at=values["created_at"],
    )
    rating = await session.get(SatisfactionRating, values["id"])
    assert rating is not None
    return rating


async def department_satisfaction(
    session: AsyncSession,
    principal: Principal,
    department: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Satisfaction:
    """`department`'s ratings created in [start, end) (either bound may be open).

    NotFound (404 `department_not_found`) for a department that does not exist or that
    `principal` may not see (a department key sees its own, a finance key its assigned
    departments, an admin every one): another department's figures are not a 403."""
    if (
        not principal.sees_department(department)
        or await session.get(Department, department) is None
    ):
        raise NotFound(f"no department {department}", code="department_not_found")
    if start is not None and end is not None and end <= start:
        raise ValidationFailed(
            "`to` must be after `from`",
            code="invalid_period",
            errors=[{"field": "to", "message": "must be after from"}],
        )
    stmt = (
        select(SatisfactionRating.score, func.count())
        .where(SatisfactionRating.department == department)
        .group_by(SatisfactionRating.score)
    )
    if start is not None:
        stmt = stmt.where(SatisfactionRating.created_at >= start)
    if end is not None:
        stmt = stmt.where(SatisfactionRating.created_at < end)
    counts = {int(score): int(n) for score, n in (await session.execute(stmt)).all()}
    distribution = {str(score): counts.get(score, 0) for score in SCORES}
    count = sum(distribution.values())
    total = sum(score * n for score, n in counts.items())
    return Satisfaction(
        department=department,
        start=start,
        end=end,
        count=count,
        average=round(total / count, 2) if count else None,
        distribution=distribution,
    )
