"""A session deleted and created again is a new incarnation: it inherits none of the old
one's webhook endpoints, and an Idempotency-Key the old one used is not replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import open_by_scan, send_text, tenant
from tests.conftest import make_settings
from warest.asgi import create_litestar


@pytest.fixture
async def app(database_url: str, schema: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(database_url, schema, tmp_path, WAREST_WEBHOOK_ALLOW_PRIVATE="true")
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as client:
        yield client


async def test_a_recreated_session_inherits_no_endpoints_and_no_idempotency_keys(
    app: AsyncTestClient[Any],
) -> None:
    a = await tenant(app, "again-a")
    await open_by_scan(app, a, "s", "6285000000001")
    await app.post("/api/v1/sandbox/accounts", json={"phone": "6285000000009"}, headers=a)
    added = await app.post(
        "/api/v1/session/s/webhooks", json={"name": "hook", "url": "http://127.0.0.1:9/hook"}, headers=a
    )
    assert added.status_code in (200, 201), added.text
    key = {"Idempotency-Key": "order-7"}
    first = await send_text(app, a, "s", "6285000000009", "your order shipped", **key)
    assert first.status_code == 200, first.text
    hooks = await app.get("/api/v1/session/s/webhooks", headers=a)
    assert [h["name"] for h in hooks.json()["results"]] == ["hook"]

    deleted = await app.delete("/api/v1/session/delete?sessionId=s", headers=a)
    assert deleted.status_code == 200, deleted.text
    await open_by_scan(app, a, "s", "6285000000001")  # created again under the same name

    hooks = await app.get("/api/v1/session/s/webhooks", headers=a)
    assert hooks.status_code == 200 and hooks.json()["results"] == []
    again = await send_text(app, a, "s", "6285000000009", "your order shipped", **key)
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["messageId"] != first.json()["results"][0]["messageId"]
    inbox = (await app.get("/api/v1/sandbox/accounts/6285000000009/inbox", headers=a)).json()["results"]
    assert [m["text"] for m in inbox] == ["your order shipped", "your order shipped"]  # sent again
    readded = await app.post(
        "/api/v1/session/s/webhooks", json={"name": "hook", "url": "http://127.0.0.1:9/other"}, headers=a
    )
    assert readded.status_code in (200, 201), readded.text
    assert readded.json()["results"][0]["url"] == "http://127.0.0.1:9/other"
