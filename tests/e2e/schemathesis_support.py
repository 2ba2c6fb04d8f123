"""What tests/e2e/test_schemathesis.py adds to Schemathesis: links, and realistic bodies.

**Links.** The served document has none (Litestar does not generate them) and its
creation responses have no schema Schemathesis could infer them from, so the test adds
them to its copy: a payment created leads to reading it, cancelling it, collecting it at
the counter, paying it on the sandbox page, refunding it, its receipt and the tracking
page (few enough that a scenario often pays a payment before refunding it). They all
start at the creation, so the state machine starts its scenarios there (an operation with
outgoing links is a scenario root, and a root with a random payment id only meets 404s);
a scenario then goes create → pay → refund through the same creation. Links the document
already has are kept (when it gains its own, they win). Operations are named by method and
path, not by Litestar's generated operationId, and a link to an operation the document
lacks fails loudly.

**Realistic bodies, in scenarios only.** The document is looser than the service: request
schemas omit `additionalProperties: false`, `return_url` only has to start with `http://`,
any text is allowed where the service refuses control and invisible characters, and no
random `matter_code` is in the catalogue. Random bodies would never create, pay or refund
anything, so in the state machine those bodies are made ones a department system would
send (keeping what was generated where it is acceptable). Operations fuzzed one by one get
the bodies exactly as generated.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from hypothesis import strategies as st

from tests.factories import PASSPORT, payment_body

PAYMENT = "/api/v1/payments/{payment_id}"
FROM_BODY_ID = {"payment_id": "$response.body#/id"}
# payment_url and tracking_url end with the applicant's token
PAY_TOKEN = {"token": "$response.body#/payment_url#regex:/pay/([^/?#]+)$"}
TRACK_TOKEN = {"token": "$response.body#/tracking_url#regex:/track/([^/?#]+)$"}

#: (source method, source path, status) → [(link name, target method, target path, parameters)]
LINKS: dict[tuple[str, str, str], list[tuple[str, str, str, dict[str, str]]]] = {
    ("post", "/api/v1/payments", "201"): [
        ("GetPayment", "get", PAYMENT, FROM_BODY_ID),
        ("CancelPayment", "post", f"{PAYMENT}/cancel", FROM_BODY_ID),
        ("CollectAtCounter", "post", f"{PAYMENT}/counter", FROM_BODY_ID),
        ("RefundPayment", "post", f"{PAYMENT}/refunds", FROM_BODY_ID),
        ("PayWithSandboxCard", "post", "/pay/{token}/sandbox", PAY_TOKEN),
        ("PaymentReceipt", "get", f"{PAYMENT}/receipt.pdf", FROM_BODY_ID),
        ("TrackPage", "get", "/track/{token}", TRACK_TOKEN),
    ],
}

#: The sandbox's test cards: one that succeeds, one that is declined.
SANDBOX_CARDS = ["4242424242424242", "4000000000000002"]


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    try:
        return document["paths"][path][method]
    except KeyError:
        raise AssertionError(f"the served document has no {method.upper()} {path}") from None


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document with LINKS added to the responses they start from."""
    document = copy.deepcopy(document)
    for (method, path, status), links in LINKS.items():
        responses = _operation(document, method, path).setdefault("responses", {})
        existing = responses.setdefault(status, {"description": "success"}).setdefault("links", {})
        for name, target_method, target_path, parameters in links:
            target = _operation(document, target_method, target_path)
            existing.setdefault(
                name, {"operationId": target["operationId"], "parameters": dict(parameters)}
            )
    return document


# --- realistic bodies ---------------------------------------------------------------


def printable(value: Any) -> Any:
    """Generated text without the characters the service refuses (control, invisible)."""
    if not isinstance(value, str):
        return value
    return "".join(c for c in value if c.isprintable() and not c.isspace()) or "x"


_references = itertools.count(1)


def acceptable_payment(body: Any) -> Any:
    """A payment a department system would create (the passport, an absolute return URL,
    a courier address), with the generated reference, quantity and metadata as printable
    text. A body that is not an object stays as generated.

    The reference is made unique (a department charges a reference once: a second
    payment for it is a 409 `duplicate_reference`), so a scenario replayed by Hypothesis
    meets the same answers however many payments earlier scenarios created."""
    if not isinstance(body, dict):
        return body
    acceptable = payment_body()
    unique = f"-{next(_references)}"
    reference = printable(body.get("reference", acceptable["reference"]))
    acceptable["reference"] = reference[: 100 - len(unique)] + unique
    if "quantity" in body:
        acceptable["quantity"] = body["quantity"]
    if isinstance(body.get("metadata"), dict):
        acceptable["metadata"] = {
            printable(k)[:40]: printable(v) for k, v in body["metadata"].items()
        }
    return acceptable


def documented_fields(document: dict[str, Any], method: str, path: str) -> set[str]:
    """The properties of an operation's JSON request body."""
    content = _operation(document, method, path)["requestBody"]["content"]["application/json"]
    name = content["schema"]["$ref"].rsplit("/", 1)[1]
    return set(document["components"]["schemas"][name]["properties"])


def only_acceptable_fields(fields: set[str]) -> Any:
    """Bodies with only the documented fields, as printable text, and an amount (of a
    refund) between 1 and the passport's fee."""

    def acceptable(body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        kept = {k: printable(v) for k, v in body.items() if k in fields}
        amount = kept.get("amount")
        if isinstance(amount, int | float) and not isinstance(amount, bool):
            kept["amount"] = 1 + int(abs(amount)) % PASSPORT["amount"]
        return kept

    return acceptable


def use_realistic_bodies(schema: Any, document: dict[str, Any]) -> None:
    """Register, on `schema` only, hooks that make its money-moving bodies realistic."""

    @schema.hook("before_generate_body").apply_to(method="POST", path="/api/v1/payments")
    def payments_that_can_be_created(context: Any, strategy: Any) -> Any:
        return strategy.map(acceptable_payment)

    @schema.hook("before_generate_body").apply_to(
        method="POST", path_regex=r"^/api/v1/payments/\{payment_id\}/(counter|refunds)$"
    )
    def collections_and_refunds_that_can_succeed(context: Any, strategy: Any) -> Any:
        operation = context.operation
        fields = documented_fields(document, operation.method.lower(), operation.path)
        return strategy.map(only_acceptable_fields(fields))

    @schema.hook("before_generate_body").apply_to(method="POST", path="/pay/{token}/sandbox")
    def sandbox_test_cards(context: Any, strategy: Any) -> Any:
        return st.fixed_dictionaries({"card_number": st.sampled_from(SANDBOX_CARDS)})
