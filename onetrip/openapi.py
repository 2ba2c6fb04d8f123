"""The OpenAPI document as the API behaves: errors, headers and security per operation.

Litestar documents what a handler's signature says: its parameters, its body and its
success response (from the return annotation). What it cannot see is filled in here,
once, from one table of rules (docs in /schema are the contract, API.md):

- every error is RFC 9457 `application/problem+json` with the one shared `Problem`
  schema, narrowed per response to its status and the stable `code`s it can carry;
- the errors that follow from the handler's shape are added by rule: a key (401, 403,
  429), a body (400, 413, 415, 422), parameters (400), any write (409), any call (503);
- the errors only the handler knows (404 `payment_not_found`…) it declares in its
  decorator: `opt=documented(errors={404: ["payment_not_found"]})`;
- `Idempotency-Key` is marked required where the handler requires it, `Retry-After` is
  on every 429 and 503, and the bearer scheme is on exactly the keyed operations.

`complete(app, document)` applies it to the document Litestar generated; the render
plugins below call it before they serve the document, so `/schema`, `/schema/swagger`
and `/schema/openapi.json` serve the same completed document. `document(app)` returns
it for tests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.routes import HTTPRoute

from onetrip.auth import admin_key, courier_key, department_key, finance_key
from onetrip.idempotency import MAX_KEY_LENGTH
from onetrip.problems import PROBLEM_JSON
from onetrip.ratelimit import PAGE_PREFIXES

#: the key of `documented(...)` in a handler's `opt`
OPT_KEY = "onetrip_openapi"
SECURITY_SCHEME = "apiKey"
PROBLEM_REF = "#/components/schemas/Problem"

#: The one problem+json shape (onetrip.errors.OneTripError.to_problem, onetrip.problems).
#: More members may follow (e.g. `payment_id` of a `duplicate_reference`).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An RFC 9457 problem. `code` is stable: clients branch on it, not on "
    "`title` or `detail` (plain words, for people).",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "the HTTP status"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "the stable error code"},
        "instance": {"type": "string", "description": "the path of the request"},
        "errors": {
            "type": "array",
            "description": "every invalid field, not only the first",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

RETRY_AFTER = {
    "description": "whole seconds to wait before sending the request again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
WWW_AUTHENTICATE = {
    "description": "the scheme to authenticate with: `Bearer`",
    "required": True,
    "schema": {"type": "string"},
}

Errors = Mapping[int, Sequence[str]]

#: A key: 401 when it is missing or not valid, 429 past its rate limit.
KEY_ERRORS: Errors = {
    401: ["missing_api_key", "invalid_api_key", "api_key_revoked", "api_key_expired"],
    429: ["rate_limited"],
}
#: Providers that refuse a valid key of another role.
ROLE_PROVIDERS = (department_key, finance_key, admin_key, courier_key)
ROLE_ERRORS: Errors = {403: ["wrong_role"]}
#: A JSON (or form) body that does not decode, or does not validate.
BODY_ERRORS: Errors = {
    400: ["malformed_json", "json_too_deep", "duplicate_key", "invalid_characters",
          "validation_failed"],
    413: ["request_too_large"],
    415: ["unsupported_media_type"],
    422: ["validation_failed"],
}  # fmt: skip
#: Path, query or header parameters that do not validate.
PARAMETER_ERRORS: Errors = {400: ["validation_failed", "invalid_characters"]}
#: A page of a list (onetrip.pagination): a cursor it did not hand out, a limit out of range.
CURSOR_ERRORS: Errors = {400: ["invalid_cursor"], 422: ["invalid_cursor"]}
LIMIT_ERRORS: Errors = {422: ["invalid_limit"]}
#: Any write: two requests writing the same unique thing at once; a body over the limit,
#: or nested too deep for the idempotency fingerprint (or a webhook) to read it.
WRITE_ERRORS: Errors = {
    400: ["json_too_deep"],
    409: ["concurrent_conflict"],
    413: ["request_too_large"],
}
#: Every call: the database cannot be reached just now.
EVERY_ERRORS: Errors = {503: ["service_unavailable"]}
#: Applicant pages are limited per client address.
PAGE_ERRORS: Errors = {429: ["rate_limited"]}
IDEMPOTENCY_ERRORS: Errors = {
    400: ["idempotency_key_required", "idempotency_key_invalid"],
    409: ["idempotency_request_in_progress"],
    422: ["idempotency_key_reused"],
}

#: An applicant page's bad link is a page in the applicant's language, never JSON.
PAGE_NOT_FOUND: dict[str, Any] = {
    "description": "Not Found: the link is not valid (an HTML page in the applicant's language)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}

WRITES = frozenset({"post", "put", "patch", "delete"})


@dataclass(frozen=True)
class OperationDoc:
    """What one handler declares about itself (see `documented`)."""

    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    idempotency_key: Literal["required", "optional"] | None = None
    request_example: Any = None
    response_example: Any = None
    #: media type → JSON schema of the success response, replacing Litestar's
    response_content: Mapping[str, Any] | None = None
    #: False for the few handlers that never touch the database (no 503)
    uses_database: bool = True
    #: request headers the handler reads itself and requires: name → description
    required_headers: Mapping[str, str] = field(default_factory=dict)


def documented(
    *,
    errors: Errors | None = None,
    idempotency_key: Literal["required", "optional"] | None = None,
    request_example: Any = None,
    response_example: Any = None,
    response_content: Mapping[str, Any] | None = None,
    uses_database: bool = True,
    required_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A handler's `opt` saying what only it knows about its responses.

    `errors`: HTTP status → the stable codes the handler (and the services it calls)
    can answer with, exactly as raised; merged with the automatic ones. Codes must exist
    in the code base. `idempotency_key="required"` when the handler calls
    `run_idempotent`/`check_key`. Examples are JSON as the API sends it, in Chinese.
    `response_content` replaces the success response's content (e.g. `text/plain`).
    `uses_database=False`: the handler never answers 503 (liveness, metrics).
    `required_headers`: headers the handler reads from the request itself and refuses
    a request without (name → description), e.g. a webhook's signature.
    """
    for status in errors or {}:
        if not 400 <= status <= 599:
            raise ValueError(f"errors are 4xx or 5xx, not {status}")
    doc = OperationDoc(
        errors={status: tuple(codes) for status, codes in (errors or {}).items()},
        idempotency_key=idempotency_key,
        request_example=request_example,
        response_example=response_example,
        response_content=response_content,
        uses_database=uses_database,
        required_headers=dict(required_headers or {}),
    )
    return {OPT_KEY: doc}


# --- completing the document -----------------------------------------------------------


def _merge(target: dict[int, list[str]], *tables: Errors) -> None:
    for table in tables:
        for status, codes in table.items():
            known = target.setdefault(status, [])
            known.extend(c for c in codes if c not in known)


def handler_errors(handler: Any, method: str, path: str, operation: dict[str, Any]) -> dict:
    """Status → codes for one operation: its own, then those the rules add for its shape."""
    doc: OperationDoc = handler.opt.get(OPT_KEY) or OperationDoc()
    errors: dict[int, list[str]] = {}
    _merge(errors, doc.errors)  # the handler's own codes first: they lead the examples
    principal = handler.resolve_dependencies().get("principal")
    if principal is not None:
        _merge(errors, KEY_ERRORS)
        if principal.dependency in ROLE_PROVIDERS:
            _merge(errors, ROLE_ERRORS)
    if path.startswith(PAGE_PREFIXES):
        _merge(errors, PAGE_ERRORS)
    if "data" in handler.parsed_fn_signature.parameters:
        _merge(errors, BODY_ERRORS)
    if operation.get("parameters"):
        _merge(errors, PARAMETER_ERRORS)
    query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    if "cursor" in query:
        _merge(errors, CURSOR_ERRORS)
    if "limit" in query:
        _merge(errors, LIMIT_ERRORS)
    if method in WRITES:
        _merge(errors, WRITE_ERRORS)
    if doc.idempotency_key is not None:
        _merge(errors, IDEMPOTENCY_ERRORS)
    if doc.uses_database:
        _merge(errors, EVERY_ERRORS)
    return errors


def _problem_response(status: int, codes: Sequence[str], html: bool) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    narrowed = {
        "allOf": [
            {"$ref": PROBLEM_REF},
            {
                "type": "object",
                "properties": {"status": {"const": status}, "code": {"enum": list(codes)}},
            },
        ]
    }
    example = {
        "type": f"https://onetrip.gov.cn/problems/{codes[0].replace('_', '-')}",
        "title": phrase,
        "status": status,
        "detail": phrase,
        "code": codes[0],
    }
    content: dict[str, Any] = {PROBLEM_JSON: {"schema": narrowed, "example": example}}
    if html:  # applicant pages answer people in their language, as a page
        content["text/html"] = {"schema": {"type": "string"}}
    response: dict[str, Any] = {
        "description": f"{phrase}. Codes: " + ", ".join(f"`{c}`" for c in codes),
        "content": content,
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": WWW_AUTHENTICATE}
    return response


def _is_litestar_default_error(response: dict[str, Any]) -> bool:
    """Litestar's own 400 (`{status_code, detail, extra}`), which the API never sends."""
    for media in (response.get("content") or {}).values():
        properties = (media.get("schema") or {}).get("properties") or {}
        if {"status_code", "detail", "extra"} <= set(properties):
            return True
    return False


def _complete_operation(
    handler: Any, method: str, path: str, operation: dict[str, Any], keyed: bool
) -> None:
    doc: OperationDoc = handler.opt.get(OPT_KEY) or OperationDoc()
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in [s for s, r in responses.items() if _is_litestar_default_error(r)]:
        del responses[status]
    html = handler.media_type == "text/html"
    for status, codes in sorted(handler_errors(handler, method, path, operation).items()):
        # a response the handler describes itself (a ResponseSpec) wins
        responses.setdefault(str(status), _problem_response(status, codes, html))
    if path.startswith(PAGE_PREFIXES) and "{" in path:
        responses.setdefault("404", copy.deepcopy(PAGE_NOT_FOUND))
    for status, response in responses.items():
        if status in {"429", "503"}:
            response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    operation["security"] = [{SECURITY_SCHEME: []}] if keyed else []
    for name, description in doc.required_headers.items():
        operation.setdefault("parameters", []).append(
            {
                "name": name,
                "in": "header",
                "required": True,
                "description": description,
                "schema": {"type": "string"},
            }
        )
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header" and parameter["name"].lower() == "idempotency-key":
            required = doc.idempotency_key == "required"
            parameter["required"] = required
            parameter["schema"] = {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KEY_LENGTH,
                "pattern": r"\S",
            }
            parameter["description"] = (
                "Required: the same key and body return the first response; the same key "
                "with another body is refused (422)."
                if required
                else "Makes retries safe"
            )
    success = [s for s in responses if s.startswith(("2", "3"))]
    if doc.response_content is not None:
        for status in success:
            responses[status]["content"] = {
                media: {"schema": schema} for media, schema in doc.response_content.items()
            }
    if doc.response_example is not None:
        for status in success:
            for media in (responses[status].get("content") or {}).values():
                media["example"] = copy.deepcopy(doc.response_example)
    body = operation.get("requestBody")
    if doc.request_example is not None and body:
        for media in body.get("content", {}).values():
            media["example"] = copy.deepcopy(doc.request_example)


def operations(app: Litestar) -> Iterable[tuple[str, str, Any]]:
    """(path as documented, method, handler) for every handler in the schema."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                yield route.path_format or "/", method.lower(), handler


_COMPLETED = "onetrip_openapi_completed"


def complete(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """Fill in `document` (Litestar's, as a dict) in place; once per document."""
    if app.state.get(_COMPLETED) is document:
        return document
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for path, method, handler in operations(app):
        operation = document.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        keyed = handler.resolve_dependencies().get("principal") is not None
        _complete_operation(handler, method, path, operation, keyed)
    app.state[_COMPLETED] = document
    return document


def document(app: Litestar) -> dict[str, Any]:
    """The completed document the app serves at /schema/openapi.json."""
    # the plugin Litestar itself uses to serve the document (and caches it in)
    from litestar._openapi.plugin import OpenAPIPlugin

    return complete(app, app.plugins.get(OpenAPIPlugin).provide_openapi_schema())


# --- serving it ----------------------------------------------------------------------


class CompletedJson(JsonRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(request.app, openapi_schema))


class CompletedYaml(YamlRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(request.app, openapi_schema))


#: Where the Swagger UI files (the swagger-ui-bundle-v2 package) are served: the
#: reference works on an intranet with no internet (issue 7 item 3).
ASSETS_PATH = "/schema/assets"


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from the service's own files: no CDN, no web fonts."""

    def __init__(self) -> None:
        super().__init__(
            path=["/", "/swagger"],
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(request.app, openapi_schema))


def render_plugins() -> list[Any]:
    return [
        OfflineSwagger(),
        CompletedJson(path="/openapi.json"),
        CompletedYaml(path=["/openapi.yaml", "/openapi.yml"]),
    ]


def assets_router() -> Any:
    """The Swagger UI's files, packaged with the service (swagger-ui-bundle-v2)."""
    from litestar.static_files import create_static_files_router
    from swagger_ui_bundle import swagger_ui_path

    return create_static_files_router(
        path=ASSETS_PATH, directories=[swagger_ui_path], include_in_schema=False
    )


__all__ = [
    "OPT_KEY",
    "PROBLEM_SCHEMA",
    "OperationDoc",
    "assets_router",
    "complete",
    "document",
    "documented",
    "render_plugins",
]
