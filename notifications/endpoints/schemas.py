"""Request and response types of the department webhook endpoints API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from onetrip.textrules import check_text

Url = Annotated[str, Meta(min_length=1, max_length=2000)]
# Event types are checked by the service (a 422 naming the unknown one), not here.
EventTypes = Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50)]


class WebhookEndpointIn(Struct, forbid_unknown_fields=True):
    url: Url
    events: EventTypes

    def __post_init__(self) -> None:
        check_text(self)


class WebhookEndpointPatch(Struct, forbid_unknown_fields=True):
    """Only the fields sent change. `enabled: true` re-enables a disabled endpoint (and
    forgets that it was failing); `enabled: false` disables it (pending deliveries stop)."""

    url: Url | UnsetType = UNSET
    events: EventTypes | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_text(self)


class WebhookEndpointOut(Struct):
    """An endpoint as its department sees it; `secret` only in the answers to creating
    it and to rotating its secret (shown once, never again)."""

    id: str
    department: str
    url: str
    events: list[str]
    enabled: bool
    #: why it is disabled: gone (it answered 410), failing (3 days), by_request
    disabled_reason: str | None
    disabled_at: datetime | None
    #: the first failed attempt since the last delivered one (null: not failing)
    failing_since: datetime | None
    last_error: str | None
    #: while a rotated-out secret still signs beside the current one
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | UnsetType = UNSET


class WebhookEndpointPage(Struct):
    data: list[WebhookEndpointOut]
    next_cursor: str | None


class WebhookAttemptOut(Struct):
    """One attempt: where it went, how long it took, what came back."""

    number: int
    url: str
    started_at: datetime
    duration_ms: int
    response_status: int | None
    #: the first KiB of the response body
    response_excerpt: str | None
    error: str | None
    #: delivered | retry | gone | failed
    outcome: str
    retry_at: datetime | None


class WebhookDeliveryOut(Struct):
    """One event for one endpoint: pending (due at next_attempt_at), delivered, failed
    or disabled. `attempt_log` only when one delivery is read."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[WebhookAttemptOut] | UnsetType = UNSET


class WebhookDeliveryPage(Struct):
    data: list[WebhookDeliveryOut]
    next_cursor: str | None
