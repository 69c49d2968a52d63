"""A session deleted and created again is a new incarnation: it inherits none of the old
one's webhook endpoints, chats, messages or contacts, and an Idempotency-Key the old one used is not
replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.test_chats_and_actions import messages
from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant
from tests.conftest import make_settings
from warest.asgi import create_litestar


@pytest.fixture
async def app(database_url: str, schema: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(database_url, schema, tmp_path, WAREST_WEBHOOK_ALLOW_PRIVATE="true")
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as client:
        yield client


TO = "6285000000009"
TO_JID = f"{TO}@s.whatsapp.net"


async def chats(app: AsyncTestClient[Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await app.get("/api/v1/chats", params={"sessionId": "s"}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["results"][0]["items"]
    return items


async def contacts(app: AsyncTestClient[Any], headers: dict[str, str]) -> list[str]:
    response = await app.get("/api/v1/contacts", params={"sessionId": "s"}, headers=headers)
    assert response.status_code == 200, response.text
    return [c["jid"] for c in response.json()["results"][0]["items"]]


async def test_a_recreated_session_inherits_no_endpoints_chats_or_idempotency_keys(
    app: AsyncTestClient[Any],
) -> None:
    a = await tenant(app, "again-a")
    await open_by_scan(app, a, "s", "6285000000001")
    await app.post("/api/v1/sandbox/accounts", json={"phone": TO}, headers=a)
    added = await app.post(
        "/api/v1/session/s/webhooks", json={"name": "hook", "url": "http://127.0.0.1:9/hook"}, headers=a
    )
    assert added.status_code in (200, 201), added.text
    key = {"Idempotency-Key": "order-7"}
    first = await send_text(app, a, "s", TO, "your order shipped", **key)
    assert first.status_code == 200, first.text
    hooks = await app.get("/api/v1/session/s/webhooks", headers=a)
    assert [h["name"] for h in hooks.json()["results"]] == ["hook"]
    muted = await app.post("/api/v1/messages/action/mute", json={"sessionId": "s", "to": TO}, headers=a)
    assert muted.status_code == 200, muted.text

    async def muted_chat() -> bool:
        return [(c["jid"], c["mutedUntil"] is not None) for c in await chats(app, a)] == [(TO_JID, True)]

    await eventually(muted_chat)
    inbound = await app.post(
        "/api/v1/sandbox/messages", json={"from": TO, "to": "6285000000001", "text": "thanks"}, headers=a
    )
    assert inbound.status_code == 200, inbound.text

    async def has_contact() -> bool:
        return await contacts(app, a) == [TO_JID]

    await eventually(has_contact)

    deleted = await app.delete("/api/v1/session/delete?sessionId=s", headers=a)
    assert deleted.status_code == 200, deleted.text
    await open_by_scan(app, a, "s", "6285000000001")  # created again under the same name

    hooks = await app.get("/api/v1/session/s/webhooks", headers=a)
    assert hooks.status_code == 200 and hooks.json()["results"] == []
    assert await chats(app, a) == []
    assert await contacts(app, a) == []
    assert (await messages(app, a, "s", TO_JID))["items"] == []
    again = await send_text(app, a, "s", TO, "your order shipped", **key)
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["messageId"] != first.json()["results"][0]["messageId"]
    inbox = (await app.get(f"/api/v1/sandbox/accounts/{TO}/inbox", headers=a)).json()["results"]
    assert [m["text"] for m in inbox] == ["your order shipped", "your order shipped"]  # sent again
    readded = await app.post(
        "/api/v1/session/s/webhooks", json={"name": "hook", "url": "http://127.0.0.1:9/other"}, headers=a
    )
    assert readded.status_code in (200, 201), readded.text
    assert readded.json()["results"][0]["url"] == "http://127.0.0.1:9/other"

    async def new_chat() -> bool:  # the new incarnation's chat: its first message, not muted
        return [(c["jid"], c["mutedUntil"]) for c in await chats(app, a)] == [(TO_JID, None)]

    await eventually(new_chat)
    assert [m["text"] for m in (await messages(app, a, "s", TO_JID))["items"]] == ["your order shipped"]
