"""One hierarchy of domain errors, each with a stable `code` and an HTTP status.

Services raise these; the app turns them into RFC 9457 problem+json responses.
"""

from __future__ import annotations

from typing import Any


class OneTripError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.errors = errors
        self.extra = extra or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://onetrip.gov.cn/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class ValidationFailed(OneTripError):
    status = 422
    code = "validation_failed"
    title = "The request is not valid"


class BadRequest(OneTripError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(OneTripError):
    status = 401
    code = "unauthorized"
    title = "A valid API key is required"


class Forbidden(OneTripError):
    status = 403
    code = "forbidden"
    title = "This key may not do that"


class NotFound(OneTripError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(OneTripError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"


class InvalidTransition(Conflict):
    code = "invalid_state_transition"
    title = "That is not possible in the current state"


class IdempotencyKeyReused(OneTripError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used with a different request"


class IdempotencyInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = "A request with this Idempotency-Key is still being processed"


class GatewayError(OneTripError):
    status = 502
    code = "gateway_error"
    title = "The payment gateway did not accept the request"


class ServiceUnavailable(OneTripError):
    status = 503
    code = "service_unavailable"
    title = "A dependency is unavailable"


class DuplicateReference(Conflict):
    """A department's business reference already has a payment that may still be paid
    (or was): charging it again would take the fee twice."""

    code = "duplicate_reference"
    title = "This reference already has a payment"


class UnsupportedMediaType(OneTripError):
    status = 415
    code = "unsupported_media_type"
    title = "The request body must be JSON"
