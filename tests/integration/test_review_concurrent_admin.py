"""Admins creating the same thing at the same moment get 201 once and 409 otherwise,
never a 500."""

from __future__ import annotations

import asyncio

from tests.factories import auth, make_key


async def test_concurrent_creation_of_one_department_is_201_once_and_409_otherwise(
    app_client,  # type: ignore[no-untyped-def]
) -> None:
    admin = await make_key("admin")
    responses = await asyncio.gather(
        *(
            app_client.post(
                "/api/v1/admin/departments",
                json={"code": "PSB", "name": "市公安局"},
                headers=auth(admin),
            )
            for _ in range(8)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, [r.text for r in responses]
    assert set(statuses) <= {201, 409}
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
