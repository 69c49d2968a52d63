"""Webhooks end to end through the in-process app and a real receiver process over HTTP:
endpoints, signed deliveries (both schemes), filters, order, retries, 404/410, the
delivery log, redelivery and replay, and actions in the reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant
from tests.conftest import make_settings
from tests.e2e.receiver import ReceiverClient, ReceiverProcess
from warest.app.webhook_signing import verify_standard, verify_warest
from warest.asgi import create_litestar

FAST = {
    "WAREST_WEBHOOK_ALLOW_PRIVATE": "true",
    "WAREST_WEBHOOK_BACKOFF_MS": "20",
    "WAREST_WEBHOOK_JITTER_MS": "5",
    "WAREST_WEBHOOK_RETRIES": "2",
    "WAREST_WEBHOOK_TIMEOUT_MS": "1000",
    "WAREST_WEBHOOK_ACTIONS_DELAY_MS": "0",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as process:
        yield process


@pytest.fixture
def hooks(receiver: ReceiverProcess) -> Iterator[ReceiverClient]:
    client = receiver.client()
    client.set_rules([])
    client.clear()
    yield client
    client.close()


@pytest.fixture
async def app(database_url: str, schema: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(database_url, schema, tmp_path, **FAST)
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as test_client:
        yield test_client


async def add_hook(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, url: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/api/v1/session/{session}/webhooks", json={"url": url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def records(hooks: ReceiverClient, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    return await asyncio.to_thread(hooks.wait_for, predicate, timeout)


def bodies(found: list[dict[str, Any]], event: str | None = None) -> list[dict[str, Any]]:
    out = [json.loads(r["body"]) for r in found]
    return [b for b in out if event is None or b["event"] == event]


async def two_sessions(client: AsyncTestClient[Any]) -> dict[str, str]:
    a = await tenant(client, "hooks-a")
    await open_by_scan(client, a, "alpha", "6281000000001")
    await open_by_scan(client, a, "beta", "6281000000002")
    return a


async def test_inbound_message_is_delivered_signed_both_ways(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    endpoint = await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and endpoint["events"] == ["message_received"]
    listed = (await app.get("/api/v1/session/alpha/webhooks", headers=a)).json()["results"]
    assert [e["name"] for e in listed] == ["primary"] and "secret" not in listed[0]

    sent = await send_text(app, a, "beta", "6281000000001", "hello alpha")
    assert sent.status_code == 200, sent.text
    found = await records(hooks, lambda rs: any(json.loads(r["body"])["event"] == "message_received" for r in rs))
    record = next(r for r in found if json.loads(r["body"])["event"] == "message_received")
    body, headers = json.loads(record["body"]), record["headers"]
    assert body["data"]["text"] == "hello alpha"
    assert body["data"]["sender"]["chatId"] == "6281000000002@s.whatsapp.net"
    assert body["session"] == {"id": "alpha", "label": "alpha", "registry": body["session"]["registry"],
                               "username": "hooks-a"}  # fmt: skip
    assert list(body) == ["event", "data", "ts", "session"]
    assert headers["x-warest-event"] == "message_received"
    assert headers["x-warest-event-id"] == body["data"]["eventId"] != "alpha"
    assert headers["x-warest-session"] == "alpha" and headers["x-warest-delivery-attempt"] == "1"
    assert headers["x-warest-sequence"] == str(body["data"]["sequence"])
    raw = record["body"].encode()
    verify_warest(raw, headers["x-warest-signature"], secret, "hooks-a")
    verify_standard(raw, headers, [secret])
    # only the filtered event type went out (no session_status for alpha)
    assert all(json.loads(r["body"])["event"] == "message_received" for r in found)
