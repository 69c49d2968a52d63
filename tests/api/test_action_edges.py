"""Message and chat actions at their edges: an unknown message marks nothing and records
nothing; clear-all answers the methods the docs list."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.test_input_validation import tenant_with_session
from tests.api.test_sandbox_messaging import open_by_scan, tenant
from tests.conftest import db_rows
from warest.config import Settings


async def chat_events(settings: Settings) -> list[str]:
    rows = await db_rows(settings, "SELECT topic FROM warest_events WHERE topic LIKE '%Chat.%'")
    return [r["topic"] for r in rows]


async def test_marking_an_unknown_message_read_records_nothing(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a = await tenant(client, "read-a")
    await open_by_scan(client, a, "m", "628800000001")
    assert await chat_events(settings) == []
    response = await client.post(
        "/api/v1/messages/NOSUCHMESSAGE/action/mark-as-read",
        json={"sessionId": "m", "to": "628800000002"},
        headers=a,
    )
    assert response.status_code == 404 and response.json()["code"] == 2600, response.text
    # The chat read route with a message id nobody knows: nothing marked, nothing recorded.
    read = await client.post(
        "/api/v1/chats/628800000003/read", json={"sessionId": "m", "messages": ["NOPE"]}, headers=a
    )
    assert read.status_code == 200 and read.json()["results"][0]["totalMarked"] == 0, read.text
    assert await chat_events(settings) == []
    chats = await client.get("/api/v1/chats", params={"sessionId": "m"}, headers=a)
    assert chats.json()["results"][0]["items"] == []


async def test_clear_all_answers_post_and_delete(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "clear-a")
    for method in ("POST", "DELETE"):
        response = await client.request(
            method,
            "/api/v1/messages/action/clear-all",
            json={"sessionId": "m", "to": "628123456789"},
            headers=a,
        )
        assert response.status_code == 200, f"{method}: {response.text}"
        body = response.json()
        assert body["code"] == 1000 and body["results"][0]["status"] == "clear-all", body
