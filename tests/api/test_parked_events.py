"""One tenant's bad byte never stops the gateway: engine text is projected made safe, and an
event a read model cannot apply is parked, shown to admins and in /healthz, and retried."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant
from tests.conftest import admin_headers
from tests.integration.test_parking import Allergic

PHONE_A = "6285100000001"
PHONE_B = "6285100000002"
TALKER = "6285100000009"


async def chats(client: AsyncTestClient[Any], headers: dict[str, str], session: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/chats?sessionId={session}", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["results"][0]["items"]
    return items


async def parked(client: AsyncTestClient[Any], query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/v1/admin/projections/parked{query}", headers=admin_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == 1000
    result: dict[str, Any] = body["results"][0]
    return result


async def test_nul_in_inbound_text_and_push_names_stops_nobody(client: AsyncTestClient[Any]) -> None:
    a, b = await tenant(client, "poisoned"), await tenant(client, "bystander")
    await open_by_scan(client, a, "a", PHONE_A)
    await open_by_scan(client, b, "b", PHONE_B)
    account = await client.post(
        "/api/v1/sandbox/accounts", json={"phone": TALKER, "pushName": "Bad\u0000Name"}, headers=a
    )
    assert account.status_code == 201, account.text
    inbound = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": TALKER, "to": PHONE_A, "text": "poison\u0000byte"},
        headers=a,
    )
    assert inbound.status_code == 200, inbound.text

    async def shown() -> bool:
        return [(c["name"], c["lastMessage"]["text"]) for c in await chats(client, a, "a")] == [
            ("Bad\ufffdName", "poison\ufffdbyte")
        ]

    await eventually(shown)
    # The other tenant's commands that wait for the read models go through.
    sent = await send_text(client, b, "b", TALKER, "hello")
    assert sent.status_code == 200 and sent.json()["code"] == 1000, sent.text

    async def listed() -> bool:  # the chat read model follows the send a moment later
        return [c["lastMessage"]["text"] for c in await chats(client, b, "b")] == ["hello"]

    await eventually(listed)
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["code"] == 1000 and health.json()["results"][0]["status"] == "healthy"
    assert health.json()["results"][0]["parked"] == {}
    assert await parked(client) == {"counts": {}, "items": []}


def runner(client: AsyncTestClient[Any], name: str) -> Any:
    """The in-process runner of read model ``name`` (the test apps project inline)."""
    return client.app.state.services.waiter.runners[name]


async def test_a_parked_event_is_shown_and_retried_and_holds_nobody(client: AsyncTestClient[Any]) -> None:
    a, b = await tenant(client, "unlucky"), await tenant(client, "bystander2")
    await open_by_scan(client, a, "a", PHONE_A)
    await open_by_scan(client, b, "b", PHONE_B)
    messages = runner(client, "messages")
    messages.projection = Allergic()  # a bug: messages with the text "poison" break the read model
    account = await client.post("/api/v1/sandbox/accounts", json={"phone": TALKER}, headers=a)
    assert account.status_code == 201, account.text
    bad = await send_text(client, a, "a", TALKER, "poison")
    assert bad.status_code == 200 and bad.json()["code"] == 1000, bad.text  # the wait passed it
    good = await send_text(client, b, "b", PHONE_A, "fine")
    assert good.status_code == 200, good.text

    health = (await client.get("/healthz")).json()
    assert health["code"] == 1000 and health["message"] == "degraded: 1 parked events"
    assert health["results"][0]["status"] == "degraded"
    assert health["results"][0]["parked"] == {"messages": 1}
    shown = await parked(client)
    assert shown["counts"] == {"messages": 1}
    [item] = shown["items"]
    assert item["projection"] == "messages" and item["topic"] == "warest.domain.messages:Message.Queued"
    assert item["error"].startswith("ValueError: cannot take ") and item["attempts"] == 1
    assert (await parked(client, "?projection=chats"))["items"] == []
    unknown = await client.get("/api/v1/admin/projections/parked?projection=nope", headers=admin_headers())
    assert unknown.status_code == 400 and unknown.json()["code"] == 2002
    assert unknown.json()["results"][0]["field"] == "projection"
    forbidden = await client.get("/api/v1/admin/projections/parked", headers=a)
    assert forbidden.status_code == 403

    still = await client.post("/api/v1/admin/projections/parked/retry", headers=admin_headers())
    assert still.json()["results"][0]["failed"] == 1 and (await parked(client))["items"][0]["attempts"] == 2
    messages.projection.allergen = "fixed"
    retried = await client.post(
        "/api/v1/admin/projections/parked/retry?projection=messages", headers=admin_headers()
    )
    assert retried.status_code == 200 and retried.json()["code"] == 1000, retried.text
    assert retried.json()["results"][0] == {
        "applied": 1,
        "failed": 0,
        "projections": [{"projection": "messages", "applied": 1, "failed": 0}],
    }
    assert await parked(client) == {"counts": {}, "items": []}
    listed = await client.get(f"/api/v1/chats/{TALKER}/messages?sessionId=a", headers=a)
    assert [m["text"] for m in listed.json()["results"][0]["items"]] == ["poison"]

    async def healthy() -> bool:
        return (await client.get("/healthz")).json()["results"][0]["status"] == "healthy"

    await eventually(healthy)
