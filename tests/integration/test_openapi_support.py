"""Real responses checked against the served OpenAPI document (issue 7 item 4).

`Conformance(document)` answers, for one response of the app, what in it the document
does not describe: an undocumented status, a content type the operation does not list,
a JSON body its schema refuses (a problem's `code` outside the documented ones
included), or a required response header missing. tests/conftest.py's `app_client`
runs it on every response of the test modules named in `CHECKED_MODULES` (or of any
module that sets `OPENAPI_CONFORMANCE = True`; of every module with
ONETRIP_TEST_OPENAPI_CONFORMANCE=all), and fails the request that broke it.

No test functions here: pytest collects the module and finds none.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import jsonschema_rs

#: Test modules whose app_client responses are checked: payments, ledger and keys.
CHECKED_MODULES = re.compile(r"(^|\.)test_(payments|ledger|keys|stripe)_[a-z_]+$")


def checked(module: Any) -> bool:
    """Whether the app_client of `module` (a test module) checks its responses
    (ONETRIP_TEST_OPENAPI_CONFORMANCE=all: every module's, to see what else breaks)."""
    if os.environ.get("ONETRIP_TEST_OPENAPI_CONFORMANCE") == "all":
        return True
    flag = getattr(module, "OPENAPI_CONFORMANCE", None)
    if flag is not None:
        return bool(flag)
    return bool(CHECKED_MODULES.search(module.__name__))


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}/?$")


class Conformance:
    """What a response does that the document does not describe."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        # literal paths before templated ones: /payments/x before /payments/{id}
        self.paths = sorted(
            ((template, _path_pattern(template)) for template in document["paths"]),
            key=lambda item: (item[0].count("{"), -len(item[0])),
        )
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for template, pattern in self.paths:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return template, operation
        return None

    def _validator(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            root = {**schema, "components": self.document.get("components", {})}
            self._validators[key] = jsonschema_rs.Draft202012Validator(root)
        return self._validators[key]

    def problems(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str | None,
        headers: dict[str, str],
        body: bytes,
    ) -> list[str]:
        """Everything about one response the document does not describe ([] if none)."""
        found = self.operation(method, path)
        if found is None:
            return []  # not an operation of the document (e.g. /schema, an unknown path)
        template, operation = found
        where = f"{method.upper()} {template} → {status}"
        responses = operation.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        response = response or responses.get("default")
        if response is None:
            return [f"{where}: status not documented (documented: {sorted(responses)})"]
        wrong: list[str] = []
        lowered = {name.lower() for name in headers}
        for name, header in (response.get("headers") or {}).items():
            if header.get("required") and name.lower() not in lowered:
                wrong.append(f"{where}: required header {name} missing")
        content = response.get("content") or {}
        if not content:
            return wrong
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media not in content:
            return [*wrong, f"{where}: content type {media!r} not documented ({sorted(content)})"]
        schema = content[media].get("schema")
        if not schema or "json" not in media:
            return wrong
        try:
            value = json.loads(body)
        except ValueError:
            return [*wrong, f"{where}: body is not JSON: {body[:200]!r}"]
        errors = [
            f"{where}: at {'/'.join(map(str, e.instance_path)) or 'the body'}: {e.message}"
            for e in self._validator(schema).iter_errors(value)
        ]
        if errors:
            errors.append(f"{where}: body {json.dumps(value, ensure_ascii=False)[:600]}")
        return wrong + errors


__all__ = ["CHECKED_MODULES", "Conformance", "checked"]
