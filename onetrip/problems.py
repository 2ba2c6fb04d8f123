"""RFC 9457 problem+json for every error the app can produce."""

from __future__ import annotations

import logging
import socket
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from onetrip.errors import OneTripError, ServiceUnavailable
from onetrip.jsonbody import MISSING_FIELD, UNKNOWN_FIELD, join_field, plain_message

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


def _public_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name the client used for a handler argument (`from`, not `created_from`)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no handler resolved (e.g. the route was not found)
        return key
    kwarg = getattr(parameter, "kwarg_definition", None)
    return getattr(kwarg, "name", None) or key


def _validation_error(request: Request[Any, Any, Any], item: dict[str, Any]) -> dict[str, str]:
    key = str(item.get("key") or "").removeprefix("$.").removeprefix("$")
    message = str(item.get("message", "is not valid"))
    is_body = item.get("source") == "body" or key == "data" or not key
    if key == "data":
        key = ""
    elif not is_body:
        key = _public_name(request, key)
    if match := UNKNOWN_FIELD.match(message):
        return {"field": join_field(key, match.group(1)), "message": "unknown field"}
    if match := MISSING_FIELD.match(message):
        return {"field": join_field(key, match.group(1)), "message": "required"}
    if is_body and not key and message.strip("'") == "data":
        # Litestar's KeyError when there is no body at all
        return {"field": "body", "message": "a JSON request body is required"}
    return {"field": key or "body", "message": plain_message(message)}


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


def _body_limit(request: Request[Any, Any, Any]) -> str:
    """` (N bytes)`: the limit of the request's handler (README "Limits")."""
    try:
        limit = request.route_handler.resolve_request_max_body_size()
    except Exception:  # no handler resolved
        return ""
    return f" ({limit} bytes)" if limit else ""


def handle_domain_error(request: Request[Any, Any, Any], exc: OneTripError) -> Response[Any]:
    # RFC 9110: a 401 names the scheme the client should authenticate with
    headers = {"WWW-Authenticate": 'Bearer realm="onetrip"'} if exc.status == 401 else {}
    headers.update(getattr(exc, "headers", None) or {})  # e.g. a 429's Retry-After
    return problem_response(exc.to_problem(instance=request.url.path), headers=headers or None)


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
    elif status == 413:
        title = "The request body is too large"
        detail = f"The request body is larger than this endpoint takes{_body_limit(request)}"
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


#: seconds a client is asked to wait while the database cannot be reached
RETRY_AFTER_SECONDS = 5

#: SQLSTATEs of a database that cannot serve us just now: the server shutting down or
#: terminating our backend, starting up, or out of connection slots (class 08, the
#: connection exceptions, is matched by its prefix)
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`) and what it was raised `from`,
    without cycles. Not `__context__`: a bug raised while handling a lost connection
    is still a bug."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending.append(current.__cause__)
    return seen


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or serve us just now (a
    refused or lost connection, a restart, no free pooled connection, SQLite locked
    past its busy timeout), rather than a bug: the client should retry, not give up."""
    for cause in _causes(exc):
        if isinstance(cause, SQLAlchemyTimeoutError | DisconnectionError):
            return True  # no pooled connection came free in time; a dead one at checkout
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, ConnectionError | socket.gaierror | TimeoutError):
            return True  # refused, reset, the host's name unknown, the connect timed out
        state = _sqlstate(cause)
        if state is not None and (state.startswith("08") or state in _UNAVAILABLE_STATES):
            return True
        if isinstance(cause, asyncpg.InternalClientError):
            return True  # the server's "terminating connection" reached an idle one
        message = str(cause)
        if isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in message:
            return True
        if "database is locked" in message and type(cause).__name__ == "OperationalError":
            return True  # SQLite: another writer held the database past busy_timeout
    return False


def handle_database_unavailable(
    request: Request[Any, Any, Any], exc: BaseException
) -> Response[Any]:
    """503 service_unavailable with Retry-After: the request may be sent again as it is
    (with the same Idempotency-Key), and will succeed once the database is back."""
    log.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    problem = ServiceUnavailable(
        "The database cannot be reached just now. Retry after a few seconds; a request "
        "with an Idempotency-Key is safe to send again as it is.",
        code="service_unavailable",
    )
    return problem_response(
        problem.to_problem(instance=request.url.path),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unavailable(exc):
        return handle_database_unavailable(request, exc)
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
