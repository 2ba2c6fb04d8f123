"""HTTP edges of the delivery domain, a module per audience (thin controllers)."""

from __future__ import annotations

from typing import Any

from delivery.api import courier, licenses, partners, print_runs, verification

routes: list[Any] = [*partners.routes, *licenses.routes, *courier.routes, *verification.routes]
routes += print_runs.routes
