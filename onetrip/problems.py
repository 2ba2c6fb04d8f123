"""RFC 9457 problem+json for every error the app can produce."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from onetrip.errors import OneTripError

log = logging.getLogger("onetrip.errors")

PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=body,
        status_code=body["status"],
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_name(key: str | None) -> str:
    if not key:
        return "body"
    return key.removeprefix("$.").removeprefix("$")


def _validation_errors(extra: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                errors.append(
                    {
                        "field": _field_name(item.get("key")),
                        "message": str(item.get("message", "is not valid")),
                    }
                )
    return errors


def handle_domain_error(request: Request[Any, Any, Any], exc: OneTripError) -> Response[Any]:
    return problem_response(exc.to_problem(instance=request.url.path))


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _CODES.get(status, "error")
    errors = None
    detail = exc.detail
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        lowered = (detail or "").lower()
        if "json" in lowered and ("malformed" in lowered or "decode" in lowered or "invalid" in lowered):
            code = "malformed_json"
        elif "json" in lowered and not errors:
            code = "malformed_json"
        else:
            code = "validation_failed"
        if errors and not detail.startswith("Validation failed"):
            detail = f"Validation failed: {errors[0]['field']}: {errors[0]['message']}"
    body: dict[str, Any] = {
        "type": f"https://onetrip.gov.cn/problems/{code.replace('_', '-')}",
        "title": detail if status != 400 or not errors else "The request is not valid",
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    return problem_response(body, headers=getattr(exc, "headers", None))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {
        "type": "https://onetrip.gov.cn/problems/internal-error",
        "title": "Internal error",
        "status": HTTP_500_INTERNAL_SERVER_ERROR,
        "detail": "Something went wrong on our side; nothing was changed by this request.",
        "code": "internal_error",
        "instance": request.url.path,
    }
    return problem_response(body)


exception_handlers: dict[Any, Any] = {
    OneTripError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

__all__ = ["PROBLEM_JSON", "MediaType", "exception_handlers", "problem_response"]
