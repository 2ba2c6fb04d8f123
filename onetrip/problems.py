"""RFC 9457 problem+json for every error the app can produce."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import IntegrityError

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


_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `(.+)`$")


def _public_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name the client used for a handler argument (`from`, not `created_from`)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no handler resolved (e.g. the route was not found)
        return key
    kwarg = getattr(parameter, "kwarg_definition", None)
    return getattr(kwarg, "name", None) or key


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _validation_error(request: Request[Any, Any, Any], item: dict[str, Any]) -> dict[str, str]:
    key = str(item.get("key") or "").removeprefix("$.").removeprefix("$")
    message = str(item.get("message", "is not valid"))
    is_body = item.get("source") == "body" or key == "data" or not key
    if key == "data":
        key = ""
    elif not is_body:
        key = _public_name(request, key)
    if match := _UNKNOWN_FIELD.match(message):
        return {"field": _join(key, match.group(1)), "message": "unknown field"}
    if match := _MISSING_FIELD.match(message):
        return {"field": _join(key, match.group(1)), "message": "required"}
    if is_body and not key and message.strip("'") == "data":
        # Litestar's KeyError when there is no body at all
        return {"field": "body", "message": "a JSON request body is required"}
    return {"field": key or "body", "message": message}


def _validation_errors(request: Request[Any, Any, Any], extra: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                errors.append(_validation_error(request, item))
    return errors


def _is_malformed_body(exc: HTTPException) -> bool:
    """Litestar turns a body that does not decode into a plain 400 ClientException."""
    cause = exc.__cause__
    return isinstance(cause, SerializationException | msgspec.DecodeError) or (
        exc.status_code == 400 and "json is malformed" in (exc.detail or "").lower()
    )


def handle_domain_error(request: Request[Any, Any, Any], exc: OneTripError) -> Response[Any]:
    # RFC 9110: a 401 names the scheme the client should authenticate with
    headers = {"WWW-Authenticate": 'Bearer realm="onetrip"'} if exc.status == 401 else None
    return problem_response(exc.to_problem(instance=request.url.path), headers=headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _CODES.get(status, "error")
    errors = None
    detail = exc.detail
    title = detail
    if isinstance(exc, ValidationException):
        errors = _validation_errors(request, exc.extra)
        code = "validation_failed"
        title = "The request is not valid"
        if errors:
            first = errors[0]
            detail = f"Validation failed: {first['field']}: {first['message']}"
    elif _is_malformed_body(exc):
        code = "malformed_json"
        title = "The request body is not valid JSON"
        detail = f"The request body is not valid JSON ({detail})"
    body: dict[str, Any] = {
        "type": f"https://onetrip.gov.cn/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    return problem_response(body, headers=getattr(exc, "headers", None))


#: PostgreSQL SQLSTATEs for text it cannot store (a NUL character, or one outside the
#: database encoding): the client's input, not our fault
_UNSTORABLE_TEXT = {"22021", "22P05"}


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _sqlstate(exc) in _UNSTORABLE_TEXT:
        return problem_response(
            {
                "type": "https://onetrip.gov.cn/problems/invalid-characters",
                "title": "The request is not valid",
                "status": 400,
                "detail": "The request contains characters that cannot be stored "
                "(such as a NUL character)",
                "code": "invalid_characters",
                "instance": request.url.path,
            }
        )
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


def handle_integrity_error(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[Any]:
    """Two requests wrote the same unique thing at once (two admins creating one
    department): the loser's transaction rolled back, nothing half-done remains."""
    log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem_response(
        {
            "type": "https://onetrip.gov.cn/problems/conflict",
            "title": "The request conflicts with the current state",
            "status": 409,
            "detail": "Another request wrote the same thing at the same time; "
            "read the current state and retry if still needed.",
            "code": "concurrent_conflict",
            "instance": request.url.path,
        }
    )


exception_handlers: dict[Any, Any] = {
    IntegrityError: handle_integrity_error,
    OneTripError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

__all__ = ["PROBLEM_JSON", "exception_handlers", "problem_response"]
