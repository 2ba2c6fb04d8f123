"""/metrics speaks Prometheus text and counts what the service does."""

from __future__ import annotations

import re

from tests.factories import auth, make_key, payment_body, seed_catalogue


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_created_payments_and_http_requests(app_client) -> None:  # type: ignore[no-untyped-def]
    await seed_catalogue(app_client, await make_key("admin"))
    psb = await make_key("department", ["PSB"])
    before = (await app_client.get("/metrics")).text
    created = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(psb, "metrics-1")
    )
    assert created.status_code == 201
    response = await app_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert (
        sample(after, "onetrip_payments_created_total", department="PSB")
        == sample(before, "onetrip_payments_created_total", department="PSB") + 1
    )
    assert "onetrip_requests_total" in after or "litestar_requests_total" in after
