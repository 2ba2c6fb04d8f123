"""Satisfaction: the applicant rates the service on the track page, and a department's
figures over a period.

`POST /track/{token}/rating` takes JSON (`{score, comment?}` → 201 with the rating,
problem+json otherwise) or the track page's urlencoded form (→ 303 back to
`/track/{token}#rating`, the outcome shown there). `GET /api/v1/departments/{code}/
satisfaction?from=&to=` → count, average and distribution, for the department's own
key, finance keys assigned to it, and admins. Rules live in delivery.ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, SerializationException
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_201_CREATED
from msgspec import Meta, Struct

from delivery import ratings
from delivery.models import SatisfactionRating
from onetrip.auth import Principal, any_key, require_role
from onetrip.clock import require_offset
from onetrip.db import get_database, unit_of_work
from onetrip.errors import OneTripError
from onetrip.jsonbody import decode_strictly
from onetrip.openapi import BODY_ERRORS, documented
from onetrip.textrules import check_text
from payments import service as payments

FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RatingIn(Struct, forbid_unknown_fields=True):
    """The applicant's rating: a whole number 1..5 and, if they like, a comment."""

    __free_text__ = frozenset({"comment"})

    score: Annotated[int, Meta(ge=1, le=5)]
    comment: Annotated[str, Meta(max_length=ratings.MAX_COMMENT_LENGTH)] | None = None

    def __post_init__(self) -> None:
        check_text(self)


class RatingOut(Struct):
    id: str
    payment_id: str
    department: str
    license_id: str
    score: int
    comment: str | None
    created_at: datetime


class ScoreCounts(Struct):
    """How many ratings gave each score."""

    one: int = msgspec.field(name="1")
    two: int = msgspec.field(name="2")
    three: int = msgspec.field(name="3")
    four: int = msgspec.field(name="4")
    five: int = msgspec.field(name="5")


class SatisfactionOut(Struct):
    """A department's ratings created in [from, to) (null: open-ended)."""

    department: str
    from_: datetime | None = msgspec.field(name="from")
    to: datetime | None
    count: int
    #: the mean score, two decimals; null when there is no rating in the period
    average: float | None
    distribution: ScoreCounts


RATING_IN_EXAMPLE = {"score": 5, "comment": "快递第二天就送到了，不用再跑一趟，很方便。"}
RATING_EXAMPLE = {
    "id": "rat_01jf0r2b3c4d5e6f7g8h9j0k1m",
    "payment_id": "pay_01jf0q8m3v6w9x2y4z5a7b8c9d",
    "department": "PSB",
    "license_id": "lic_01jf0qa2b3c4d5e6f7g8h9j0k1",
    "score": 5,
    "comment": "快递第二天就送到了，不用再跑一趟，很方便。",
    "created_at": "2026-12-03T06:20:00Z",
}
SATISFACTION_EXAMPLE = {
    "department": "PSB",
    "from": "2026-11-01T00:00:00+08:00",
    "to": "2026-12-01T00:00:00+08:00",
    "count": 8,
    "average": 4.38,
    "distribution": {"1": 0, "2": 1, "3": 0, "4": 2, "5": 5},
}

_RATING_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["score"],
    properties={
        "score": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=5),
        "comment": Schema(
            one_of=[
                Schema(type=OpenAPIType.STRING, max_length=ratings.MAX_COMMENT_LENGTH),
                Schema(type=OpenAPIType.NULL),
            ]
        ),
    },
    additional_properties=False,
    description="A score 1..5 and an optional comment (at most 500 characters).",
)


@dataclass
class _RatingOperation(Operation):
    """The one operation that takes two bodies: JSON from a program (201 with the
    rating) or the track page's urlencoded form (303 back to the page). Litestar
    documents a handler's body from its `data` parameter, which can be only one."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(schema=_RATING_SCHEMA),
                "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_RATING_SCHEMA),
            },
        )
        responses = self.responses if self.responses is not None else {}
        responses["303"] = OpenAPIResponse(
            description="The form was sent: back to the track page, which shows the outcome",
            headers={
                "location": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description="/track/{token}#rating (with ?rating_error= when refused)",
                    required=True,
                )
            },
        )
        self.responses = responses


def rating_out(rating: SatisfactionRating) -> RatingOut:
    return RatingOut(
        id=rating.id,
        payment_id=rating.payment_id,
        department=rating.department,
        license_id=rating.license_id,
        score=rating.score,
        comment=rating.comment,
        created_at=rating.created_at,
    )


def _track_href(token: str, request: Request[Any, Any, Any], error: str | None = None) -> str:
    query = []
    lang = request.query_params.get("lang")
    if lang in ("zh-CN", "en"):
        query.append(f"lang={lang}")
    if error:
        query.append(f"rating_error={quote(error)}")
    suffix = f"?{'&'.join(query)}" if query else ""
    return f"/track/{quote(token, safe='')}{suffix}#rating"


def _form_score(raw: Any) -> Any:
    """A form's score as an int when it is one ("5"); anything else as it came, for
    ratings.check_rating to refuse."""
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return raw


class RatingController(Controller):
    path = ""
    tags = ["applicant pages"]

    @post(
        "/track/{token:str}/rating",
        summary="Rate the service once the licence is delivered or collected",
        description="JSON `{score: 1..5, comment?}` → 201 with the rating; the track "
        "page's form (urlencoded) → 303 back to `/track/{token}#rating`. One rating per "
        "payment (409 `already_rated`), only after delivery or collection (409 "
        "`not_delivered_yet`).",
        security=[],
        status_code=HTTP_201_CREATED,
        operation_class=_RatingOperation,
        opt=documented(
            errors={
                **BODY_ERRORS,  # the body is read by hand (two media types), same rules
                404: ["payment_not_found"],
                409: ["not_delivered_yet", "already_rated"],
                422: ["validation_failed", "invalid_rating"],
            },
            request_example=RATING_IN_EXAMPLE,
            response_example=RATING_EXAMPLE,
        ),
    )
    async def rate(self, request: Request[Any, Any, Any], token: str) -> Response[RatingOut]:
        media_type = request.content_type[0].strip().lower()
        if media_type in FORM_MEDIA_TYPES:
            return await self._rate_from_form(request, token)
        try:
            value = await request.json()
        except SerializationException as exc:  # as Litestar answers for a `data` body
            raise ClientException(detail=str(exc)) from exc
        data = decode_strictly(value, RatingIn)
        assert isinstance(data, RatingIn)
        async with unit_of_work() as session:
            payment = await payments.payment_by_token(session, token)
            rating = await ratings.rate_service(
                session, payment, score=data.score, comment=data.comment
            )
            body = rating_out(rating)
        return Response(body, status_code=HTTP_201_CREATED)

    async def _rate_from_form(self, request: Request[Any, Any, Any], token: str) -> Redirect:
        """The page's form: every outcome goes back to the page, which says it in the
        applicant's language (a bad link lands on the page's own 404)."""
        form = await request.form()
        try:
            async with unit_of_work() as session:
                payment = await payments.payment_by_token(session, token)
                await ratings.rate_service(
                    session,
                    payment,
                    score=_form_score(form.get("score")),
                    comment=form.get("comment") or None,
                )
        except OneTripError as error:
            return Redirect(path=_track_href(token, request, error.code), status_code=303)
        return Redirect(path=_track_href(token, request), status_code=303)


class SatisfactionController(Controller):
    path = "/api/v1/departments"
    tags = ["satisfaction"]
    dependencies = {"principal": Provide(any_key)}

    @get(
        "/{code:str}/satisfaction",
        summary="A department's satisfaction ratings over a period",
        description="Ratings created in [from, to) (either may be left out): their count, "
        "average score (null when there is none) and how many gave each score. A "
        "department key reads its own department, a finance key its assigned ones, an "
        "admin every one; any other department is a 404.",
        opt=documented(
            errors={
                403: ["wrong_role"],
                404: ["department_not_found"],
                422: ["validation_failed", "invalid_period"],
            },
            response_example=SATISFACTION_EXAMPLE,
        ),
    )
    async def satisfaction(
        self,
        principal: Principal,
        code: str,
        rated_from: Annotated[datetime | None, QueryParameter(name="from")] = None,
        rated_to: Annotated[datetime | None, QueryParameter(name="to")] = None,
    ) -> SatisfactionOut:
        require_role(principal, "department", "finance", "admin")
        require_offset(from_=rated_from, to=rated_to)
        async with get_database().session() as session:
            figures = await ratings.department_satisfaction(
                session, principal, code, start=rated_from, end=rated_to
            )
        counts = figures.distribution
        return SatisfactionOut(
            department=figures.department,
            from_=figures.start,
            to=figures.end,
            count=figures.count,
            average=figures.average,
            distribution=ScoreCounts(
                one=counts["1"],
                two=counts["2"],
                three=counts["3"],
                four=counts["4"],
                five=counts["5"],
            ),
        )


routes: list[Any] = [RatingController, SatisfactionController]
