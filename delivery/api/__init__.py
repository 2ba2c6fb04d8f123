"""HTTP edges of the delivery domain, a module per audience (thin controllers)."""

from __future__ import annotations

from typing import Any

from delivery.api import partners

routes: list[Any] = [*partners.routes]
