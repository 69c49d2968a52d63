"""Webhooks end to end through the in-process app and a real receiver process over HTTP:
endpoints, signed deliveries (both schemes), filters, order, retries, 404/410, the
delivery log, redelivery and replay, and actions in the reply."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
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
    async with AsyncTestClient(
        app=create_litestar(settings), base_url="http://127.0.0.1:7308"
    ) as test_client:
        yield test_client


async def add_hook(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, url: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/session/{session}/webhooks", json={"url": url, **body}, headers=headers
    )
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
    found = await records(
        hooks, lambda rs: any(json.loads(r["body"])["event"] == "message_received" for r in rs)
    )
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


def events_of(found: list[dict[str, Any]], session: str, event: str) -> list[dict[str, Any]]:
    return [
        r
        for r in found
        if r["headers"].get("x-warest-session") == session and r["headers"]["x-warest-event"] == event
    ]


async def deliveries(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, **query: Any
) -> list[Any]:
    response = await client.get(f"/api/v1/session/{session}/deliveries", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_a_failing_session_keeps_its_order_and_blocks_no_other(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    for session in ("alpha", "beta"):
        await add_hook(app, a, session, f"{receiver.url}/hook", events=["message_received"])
    # alpha's receiver fails twice (then the third attempt of the first event succeeds)
    hooks.set_rules([{"match": {"x-warest-session": "alpha"}, "status": 503, "times": 2}])
    for i in range(3):
        assert (await send_text(app, a, "beta", "6281000000001", f"to alpha {i}")).status_code == 200
        assert (await send_text(app, a, "alpha", "6281000000002", f"to beta {i}")).status_code == 200
    found = await records(
        hooks,
        lambda rs: (
            len(
                [r for r in rs if r["status"] == 200 and r["headers"]["x-warest-event"] == "message_received"]
            )
            == 6
        ),
    )
    alpha = events_of(found, "alpha", "message_received")
    # attempts 1 and 2 failed, 3 succeeded; same webhook-id and event id each time
    first = [r for r in alpha if json.loads(r["body"])["data"]["text"] == "to alpha 0"]
    assert [r["headers"]["x-warest-delivery-attempt"] for r in first] == ["1", "2", "3"]
    assert len({r["headers"]["webhook-id"] for r in first}) == 1
    assert len({r["headers"]["x-warest-event-id"] for r in first}) == 1
    delivered = [json.loads(r["body"])["data"] for r in alpha if r["status"] == 200]
    assert [d["text"] for d in delivered] == ["to alpha 0", "to alpha 1", "to alpha 2"]
    assert [d["sequence"] for d in delivered] == sorted(d["sequence"] for d in delivered)
    # beta was not held up by alpha's failures: its first event arrived before alpha's first success
    beta_first = min(r["seq"] for r in events_of(found, "beta", "message_received"))
    alpha_success = min(r["seq"] for r in alpha if r["status"] == 200)
    assert beta_first < alpha_success

    async def recorded() -> bool:  # outcomes are stored in batches, after the receiver saw them
        log = await deliveries(app, a, "alpha", event="message_received")
        return sorted(d["attempts"] for d in log) == [1, 1, 3]

    await eventually(recorded)
    log = await deliveries(app, a, "alpha", event="message_received")
    assert sorted(d["attempts"] for d in log) == [1, 1, 3] and {d["status"] for d in log} == {"delivered"}


async def test_a_delivery_given_up_is_failed_and_the_lane_moves_on(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    hooks.set_rules([{"match": {"x-warest-session": "alpha"}, "status": 500, "times": 3}])
    await send_text(app, a, "beta", "6281000000001", "lost one")
    await send_text(app, a, "beta", "6281000000001", "next one")
    await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))

    async def settled() -> bool:
        log = await deliveries(app, a, "alpha", event="message_received")
        return sorted(d["status"] for d in log) == ["delivered", "failed"]

    await eventually(settled)
    log = await deliveries(app, a, "alpha", event="message_received")
    by_status = {d["status"]: d for d in log}
    assert by_status["failed"]["attempts"] == 3 and by_status["failed"]["lastStatus"] == 500
    assert by_status["delivered"]["attempts"] == 1
    detail = (
        await app.get(f"/api/v1/session/alpha/deliveries/{by_status['failed']['id']}", headers=a)
    ).json()
    attempts = detail["results"][0]["attemptLog"]
    assert [x["status"] for x in attempts] == [500, 500, 500] and all(x["latencyMs"] >= 0 for x in attempts)
    # a client error is not retried
    hooks.set_rules([{"match": {"x-warest-session": "alpha"}, "status": 422}])
    await send_text(app, a, "beta", "6281000000001", "refused")
    await records(hooks, lambda rs: any(r["status"] == 422 for r in rs))

    async def failed_once() -> bool:
        log = await deliveries(app, a, "alpha", status="failed")
        return any(d["lastStatus"] == 422 and d["attempts"] == 1 for d in log)

    await eventually(failed_once)


async def test_410_disables_the_endpoint_which_is_kept_and_can_be_enabled(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/gone", events=["message_received"])
    hooks.set_rules([{"path": "/gone", "status": 410, "times": 1}])
    await send_text(app, a, "beta", "6281000000001", "first")

    async def disabled() -> bool:
        view = (await app.get("/api/v1/session/alpha/webhooks/primary", headers=a)).json()["results"][0]
        return view["enabled"] is False

    await eventually(disabled)
    view = (await app.get("/api/v1/session/alpha/webhooks/primary", headers=a)).json()["results"][0]
    assert (
        view["disabledBy"] == "delivery" and "410" in view["disabledReason"] and view["url"].endswith("/gone")
    )
    enabled = await app.patch("/api/v1/session/alpha/webhooks/primary", json={"enabled": True}, headers=a)
    assert enabled.status_code == 200 and enabled.json()["results"][0]["enabled"] is True
    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    assert [json.loads(r["body"])["data"]["text"] for r in found if r["status"] == 200] == ["first"]


async def test_replay_and_redeliver_reuse_the_ids(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    for text in ("one", "two", "three"):
        await send_text(app, a, "beta", "6281000000001", text)
    first = await records(hooks, lambda rs: len(rs) == 3)
    log = await deliveries(app, a, "alpha")
    positions = sorted(d["position"] for d in log)
    hooks.clear()
    replay = await app.post(
        "/api/v1/session/alpha/webhooks/primary/replay",
        json={"fromPosition": positions[0], "toPosition": positions[1]},
        headers=a,
    )
    assert replay.status_code == 202 and replay.json()["results"][0]["deliveries"] == 2
    again = await records(hooks, lambda rs: len(rs) == 2)
    ids = {r["headers"]["webhook-id"]: r["headers"]["x-warest-event-id"] for r in first}
    assert [json.loads(r["body"])["data"]["text"] for r in again] == ["one", "two"]
    for record in again:
        assert ids[record["headers"]["webhook-id"]] == record["headers"]["x-warest-event-id"]
        assert record["body"] == next(
            r["body"] for r in first if r["headers"]["webhook-id"] == record["headers"]["webhook-id"]
        )
    hooks.clear()
    third = next(d for d in log if d["position"] == positions[2])
    redo = await app.post(f"/api/v1/session/alpha/deliveries/{third['id']}/redeliver", headers=a)
    assert redo.status_code == 202
    one = await records(hooks, lambda rs: len(rs) == 1)
    assert one[0]["headers"]["webhook-id"] == third["id"]
    detail = (await app.get(f"/api/v1/session/alpha/deliveries/{third['id']}", headers=a)).json()["results"][
        0
    ]
    assert detail["replays"] == 1
    missing = await app.post("/api/v1/session/alpha/deliveries/msg_nope/redeliver", headers=a)
    refused(missing, 404, 2600, message="delivery 'msg_nope' not found")


async def test_actions_in_the_reply_become_commands(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/bot", events=["message_received"])
    reply = {
        "actions": [
            {"type": "text", "to": "{{sender.chatId}}", "text": "pong: {{text}}"},
            {
                "type": "media",
                "to": "{{sender.chatId}}",
                "mediaType": "image",
                "url": "https://example.com/a.png",
            },
        ]
    }
    hooks.set_rules([{"match": {"x-warest-session": "alpha"}, "body": reply, "times": 1}])
    await send_text(app, a, "beta", "6281000000001", "ping")

    async def reported() -> bool:
        log = await deliveries(app, a, "alpha")
        return bool(log and log[0]["actions"])

    await eventually(reported)
    report = (await deliveries(app, a, "alpha"))[0]["actions"]
    assert report[0]["ok"] is True and report[0]["kind"] == "text" and report[0]["message_id"]
    assert report[1] == {
        "path": "1",
        "kind": "media",
        "ok": False,
        "error": "send kind 'media' is not available yet",
        "message_id": None,
    }

    async def conversation() -> list[tuple[str, str]]:
        chats = await app.get(
            "/api/v1/chats/6281000000001@s.whatsapp.net/messages", params={"sessionId": "beta"}, headers=a
        )
        return [(m["direction"], m["text"]) for m in chats.json()["results"][0]["items"]]

    async def replied() -> bool:  # the reply reaches beta's read model a moment after the report
        return len(await conversation()) == 2

    await eventually(replied)
    assert await conversation() == [("in", "pong: ping"), ("out", "ping")]


async def test_commands_fire_message_command(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_command", "message_received"])
    await send_text(app, a, "beta", "6281000000001", "/Help me please")
    await send_text(app, a, "beta", "6281000000001", "just text")
    found = await records(hooks, lambda rs: len(rs) == 2)
    first, second = (json.loads(r["body"]) for r in found)
    assert first["event"] == "message_command" and first["data"]["command"] == "help"
    assert first["data"]["args"] == ["me", "please"] and second["event"] == "message_received"


async def test_urls_to_private_addresses_are_refused(app: AsyncTestClient[Any]) -> None:
    a = await two_sessions(app)
    metadata = await app.post(
        "/api/v1/session/alpha/webhooks", json={"url": "http://169.254.169.254/latest/meta-data"}, headers=a
    )
    body = refused(metadata, 400, 2002, field="url")  # even with WAREST_WEBHOOK_ALLOW_PRIVATE on
    assert "metadata" in body["results"][0]["reason"]


async def test_private_urls_need_the_setting(database_url: str, schema: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, schema, tmp_path)  # WAREST_WEBHOOK_ALLOW_PRIVATE off
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as client:
        a = await tenant(client, "ssrf")
        await open_by_scan(client, a, "s", "6281000000009")
        for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://[::1]/x",
                    "http://2130706433/x", "file:///etc/passwd"):  # fmt: skip
            response = await client.post("/api/v1/session/s/webhooks", json={"url": url}, headers=a)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["code"] == 2002, (url, response.text)
            refusal = response.json()["results"][0]
            assert refusal["field"] == "url" and refusal["source"] == "body"
            # a private destination names the setting that allows it; a file URL is never allowed
            private = not url.startswith("file:")
            assert ("WAREST_WEBHOOK_ALLOW_PRIVATE=true" in refusal["reason"]) is private, (url, refusal)
        loopback = await client.post(
            "/api/v1/session/s/webhooks", json={"url": "http://127.0.0.1/x"}, headers=a
        )
        assert loopback.status_code == 400 and loopback.json()["code"] == 2002
        reason = loopback.json()["results"][0]["reason"]
        assert "loopback" in reason and reason.endswith(
            "(private destinations need WAREST_WEBHOOK_ALLOW_PRIVATE=true)"
        )
        preflight = await client.post(
            "/api/v1/webhook/preflight",
            json={"sessionId": "s", "url": "http://127.0.0.1:9/x", "secret": "x" * 24},
            headers=a,
        )
        assert preflight.status_code == 207
        result = preflight.json()["results"][0]
        assert result["ok"] is False and "loopback" in result["error"]


async def test_preflight_and_the_session_config_route(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    secret = "s3cretKey-long-enough-for-us"
    for path in ("/api/v1/webhook/preflight", "/api/webhooks/preflight"):
        ok = await app.post(
            path, json={"sessionId": "alpha", "url": f"{receiver.url}/pf", "secret": secret}, headers=a
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["results"][0]["ok"] is True and ok.json()["results"][0]["status"] == 200
    found = await records(hooks, lambda rs: len(rs) == 2)
    ping = found[0]
    assert ping["headers"]["x-warest-preflight"] == "1" and json.loads(ping["body"])["data"] == {"ping": True}
    verify_warest(ping["body"].encode(), ping["headers"]["x-warest-signature"], secret, "hooks-a")
    verify_standard(ping["body"].encode(), ping["headers"], [secret])
    # a failing preflight refuses to save the URL
    hooks.set_rules([{"path": "/down", "status": 500}])
    down = await app.post(
        "/api/v1/session/alpha/config",
        json={"webhookUrl": f"{receiver.url}/down", "preflight": True},
        headers=a,
    )
    body = refused(down, 400, 2000, message="Webhook preflight failed")
    assert body["results"][0]["ok"] is False and body["results"][0]["status"] == 500
    assert (await app.get("/api/v1/session/alpha/webhooks", headers=a)).json()["results"] == []
    # the original's single URL maps onto the endpoint "primary"; a generated secret is shown once
    saved = await app.post(
        "/api/v1/session/alpha/config", json={"webhookUrl": f"{receiver.url}/hook"}, headers=a
    )
    assert saved.status_code == 200, saved.text
    result = saved.json()["results"][0]
    assert result["webhookUrl"] == f"{receiver.url}/hook" and result["webhookSecret"].startswith("whsec_")
    again = await app.post("/api/v1/session/alpha/config", json={"label": "Alpha"}, headers=a)
    assert "webhookSecret" not in again.json()["results"][0]
    # a refused value names the config's field, not the endpoint's
    short = await app.post("/api/v1/session/alpha/config", json={"webhookSecret": "short"}, headers=a)
    refused(short, 400, 2002, field="webhookSecret")
    ftp = await app.post("/api/v1/session/alpha/config", json={"webhookUrl": "ftp://x.example/h"}, headers=a)
    refused(ftp, 400, 2002, field="webhookUrl")
    removed = await app.post("/api/v1/session/alpha/config", json={"webhookUrl": ""}, headers=a)
    assert removed.status_code == 200
    assert (await app.get("/api/v1/session/alpha/webhooks", headers=a)).json()["results"] == []


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    old = (await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"]))["secret"]
    rotated = await app.post(
        "/api/v1/session/alpha/webhooks/primary/rotate", json={"graceSeconds": 600}, headers=a
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["results"][0]["secret"]
    assert new != old and rotated.json()["results"][0]["previousSecretValidUntil"]
    await send_text(app, a, "beta", "6281000000001", "rotated")
    record = (await records(hooks, lambda rs: len(rs) == 1))[0]
    raw, headers = record["body"].encode(), record["headers"]
    for secret in (old, new):
        verify_standard(raw, headers, [secret])
    # the original's one-value header with the new secret, the old one's beside it
    assert _verifies(raw, headers["x-warest-signature"], new) and not _verifies(
        raw, headers["x-warest-signature"], old
    )
    assert _verifies(raw, headers["x-warest-signature-previous"], old)
    history = await app.get("/api/v1/events", params={"type": "WebhookEndpoint.*"}, headers=a)
    assert history.status_code == 200, history.text
    text = history.text
    assert "secret_sealed" not in text and old not in text and new not in text
    assert "WebhookEndpoint.SecretRotated" in text


def _verifies(raw: bytes, header: str, secret: str) -> bool:
    try:
        verify_warest(raw, header, secret, "hooks-a")
    except Exception:
        return False
    return True


async def test_bad_input_names_the_field(app: AsyncTestClient[Any]) -> None:
    a = await two_sessions(app)
    cases = [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com/x", "events": ["nope"]}, "events"),
        ({"url": "https://example.com/x", "secret": "short"}, "secret"),
        ({"url": "https://example.com/x", "name": "bad name"}, "name"),
    ]
    for body, field in cases:
        response = await app.post("/api/v1/session/alpha/webhooks", json=body, headers=a)
        refused(response, 400, 2002, field=field)
    unknown = await app.get("/api/v1/session/nope/webhooks", headers=a)
    assert unknown.status_code == 404 and unknown.json()["code"] == 1101
    bad_status = await app.get("/api/v1/session/alpha/deliveries", params={"status": "weird"}, headers=a)
    refused(bad_status, 400, 2002, field="status")
    assert bad_status.json()["results"][0]["source"] == "query"
    no_range = await app.post("/api/v1/session/alpha/webhooks/primary/replay", json={}, headers=a)
    refused(no_range, 400, 2002, field="from")
    no_endpoint = await app.post(
        "/api/v1/session/alpha/webhooks/primary/replay", json={"fromPosition": 1}, headers=a
    )
    refused(no_endpoint, 404, 2600, message="webhook 'primary' not found")


@pytest.fixture
async def strict_app(database_url: str, schema: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    """Breaker after 2 failures, open 1.5 s; cool-off 0.8 s; one retry."""
    overrides = FAST | {
        "WAREST_WEBHOOK_RETRIES": "1",
        "WAREST_WEBHOOK_BREAKER_FAILURES": "2",
        "WAREST_WEBHOOK_BREAKER_OPEN_MS": "1500",
        "WAREST_WEBHOOK_COOLOFF_MS": "800",
    }
    settings = make_settings(database_url, schema, tmp_path, **overrides)
    async with AsyncTestClient(
        app=create_litestar(settings), base_url="http://127.0.0.1:7308"
    ) as test_client:
        yield test_client


async def health(client: AsyncTestClient[Any], headers: dict[str, str]) -> dict[str, Any]:
    view = (await client.get("/api/v1/session/alpha/webhooks/primary", headers=headers)).json()["results"][0]
    return dict(view["health"])


async def test_the_circuit_breaker_opens_and_closes(
    strict_app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    app = strict_app
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    hooks.set_rules([{"status": 500, "times": 2}])
    for text in ("one", "two"):  # "one" fails twice (its two attempts) and opens the circuit
        await send_text(app, a, "beta", "6281000000001", text)
    failed = await records(hooks, lambda rs: len(rs) >= 2)

    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    success = next(r for r in found if r["status"] == 200)
    assert json.loads(success["body"])["data"]["text"] == "two"
    one = await attempt_log(app, a, failed[0]["headers"]["webhook-id"])
    two = await attempt_log(app, a, success["headers"]["webhook-id"])
    assert [x["status"] for x in one] == [500, 500] and [x["status"] for x in two] == [200]
    # "two" waited behind "one" in its lane; the second failure in a row opened the circuit
    # for 1.5 s from that attempt, and "two" was held back that long (a wait the dispatcher
    # enforces, measured on its own recorded clock: a slow machine can only make it longer).
    held = datetime.fromisoformat(two[0]["at"]) - datetime.fromisoformat(one[-1]["at"])
    assert held.total_seconds() >= 1.5

    async def closed() -> bool:
        state = await health(app, a)
        return (
            state["failures"] == 0
            and state["circuitOpenUntil"] is None
            and state["lastSuccessAt"] == two[0]["at"]
            and state["lastFailureAt"] == one[-1]["at"]
        )

    await eventually(closed)


async def test_the_circuit_opens_after_failures_in_a_row_and_shows_until_when(
    strict_app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    app = strict_app
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    hooks.set_rules([{"status": 500, "times": 2}])
    await send_text(app, a, "beta", "6281000000001", "one")  # nothing after it: the state stays
    failed = await records(hooks, lambda rs: len(rs) >= 2)
    log = await attempt_log(app, a, failed[0]["headers"]["webhook-id"])

    async def opened() -> bool:
        return (await health(app, a))["circuitOpenUntil"] is not None

    await eventually(opened)
    state = await health(app, a)
    assert state["failures"] == 2 and state["lastError"] == "HTTP 500"
    assert state["lastFailureAt"] == log[-1]["at"]
    open_for = datetime.fromisoformat(state["circuitOpenUntil"]) - datetime.fromisoformat(log[-1]["at"])
    assert open_for.total_seconds() == 1.5  # WAREST_WEBHOOK_BREAKER_OPEN_MS from the failure


async def attempt_log(client: AsyncTestClient[Any], headers: dict[str, str], delivery: str) -> list[Any]:
    async def logged() -> bool:  # outcomes are stored in batches, just after the attempt
        response = await client.get(f"/api/v1/session/alpha/deliveries/{delivery}", headers=headers)
        return response.status_code == 200 and response.json()["results"][0]["status"] != "pending"

    await eventually(logged)
    response = await client.get(f"/api/v1/session/alpha/deliveries/{delivery}", headers=headers)
    return list(response.json()["results"][0]["attemptLog"])


async def test_retry_after_and_the_401_cool_off_are_honoured(
    strict_app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    app = strict_app
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    hooks.set_rules([{"status": 401, "times": 1}])
    await send_text(app, a, "beta", "6281000000001", "auth")
    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    assert [r["status"] for r in found] == [401, 200]
    assert found[1]["t"] - found[0]["t"] >= 0.75  # the cool-off (0.8 s), not the 20 ms back-off
    assert found[1]["headers"]["webhook-id"] == found[0]["headers"]["webhook-id"]
    hooks.clear()
    hooks.set_rules([{"status": 429, "headers": {"Retry-After": "1"}, "times": 1}])
    await send_text(app, a, "beta", "6281000000001", "throttled")
    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    assert [r["status"] for r in found] == [429, 200] and found[1]["t"] - found[0]["t"] >= 0.95


async def cooling_off(app: AsyncTestClient[Any], a: dict[str, str], hooks: ReceiverClient) -> None:
    """The receiver answers 401 to the first delivery: the endpoint cools off (15 min)."""
    hooks.set_rules([{"status": 401, "times": 1}])
    await send_text(app, a, "beta", "6281000000001", "auth")
    await records(hooks, lambda rs: any(r["status"] == 401 for r in rs))

    async def cooling() -> bool:
        return (await health(app, a))["coolOffUntil"] is not None

    await eventually(cooling)


async def test_the_reset_route_ends_a_cool_off_and_the_delivery_goes_out(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)  # the default cool-off: 15 minutes
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    await cooling_off(app, a, hooks)
    state = await health(app, a)
    assert state["lastError"] == "HTTP 401"
    cooloff_until = datetime.fromisoformat(state["coolOffUntil"])
    assert (cooloff_until - datetime.fromisoformat(state["lastFailureAt"])).total_seconds() == 900
    # enabling an endpoint that is enabled changes nothing: it still cools off
    again = await app.patch("/api/v1/session/alpha/webhooks/primary", json={"enabled": True}, headers=a)
    assert again.status_code == 200 and again.json()["results"][0]["health"]["coolOffUntil"] is not None

    reset = await app.post("/api/v1/session/alpha/webhooks/primary/reset", headers=a)
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert body["code"] == 1000 and body["message"] == "Webhook health reset"
    cleared = body["results"][0]["health"]
    assert cleared["coolOffUntil"] is None and cleared["circuitOpenUntil"] is None
    assert cleared["failures"] == 0 and cleared["lastError"] == "HTTP 401"  # the history is kept
    assert (await health(app, a))["coolOffUntil"] is None
    # the pending delivery goes out now, 15 minutes before its cool-off would have ended
    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    assert [r["status"] for r in found] == [401, 200]
    assert found[1]["headers"]["webhook-id"] == found[0]["headers"]["webhook-id"]
    assert found[1]["headers"]["x-warest-delivery-attempt"] == "2"
    assert datetime.now(UTC) < cooloff_until

    missing = await app.post("/api/v1/session/alpha/webhooks/nope/reset", headers=a)
    refused(missing, 404, 2600, message="webhook 'nope' not found")


async def test_an_endpoint_removed_and_added_again_starts_fresh(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    await cooling_off(app, a, hooks)
    removed = await app.delete("/api/v1/session/alpha/webhooks/primary", headers=a)
    assert removed.status_code == 200, removed.text
    fresh = await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    assert fresh["health"]["coolOffUntil"] is None and fresh["health"]["failures"] == 0
    await send_text(app, a, "beta", "6281000000001", "after re-add")
    found = await records(
        hooks, lambda rs: any(json.loads(r["body"])["data"].get("text") == "after re-add" for r in rs)
    )
    assert [r["status"] for r in found][-1] == 200


async def test_enabling_a_disabled_endpoint_starts_it_fresh(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    await cooling_off(app, a, hooks)
    off = await app.patch("/api/v1/session/alpha/webhooks/primary", json={"enabled": False}, headers=a)
    assert off.status_code == 200 and off.json()["results"][0]["health"]["coolOffUntil"] is not None
    on = await app.patch("/api/v1/session/alpha/webhooks/primary", json={"enabled": True}, headers=a)
    assert on.status_code == 200, on.text
    assert on.json()["results"][0]["health"]["coolOffUntil"] is None
    found = await records(hooks, lambda rs: any(r["status"] == 200 for r in rs))
    assert [r["status"] for r in found] == [401, 200]


async def test_the_default_endpoint_serves_sessions_without_their_own(
    database_url: str, schema: str, tmp_path: Path, hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    secret = "default-secret-for-all-sessions"
    settings = make_settings(
        database_url, schema, tmp_path, **FAST,
        WEBHOOK_DEFAULT_URL=f"{receiver.url}/default", WEBHOOK_DEFAULT_SECRET=secret,
    )  # fmt: skip
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as app:
        a = await two_sessions(app)
        await add_hook(app, a, "alpha", f"{receiver.url}/own", events=["message_received"])
        await send_text(app, a, "alpha", "6281000000002", "to beta")
        await send_text(app, a, "beta", "6281000000001", "to alpha")

        def both(rs: list[dict[str, Any]]) -> bool:
            own = any(r["path"] == "/own" for r in rs)
            return own and any(r["path"] == "/default" and "message_received" in r["body"] for r in rs)

        found = await records(hooks, both)
        default = [r for r in found if r["path"] == "/default"]
        messages = [r for r in default if json.loads(r["body"])["event"] == "message_received"]
        # alpha's events went to the default only until it had an endpoint of its own
        assert [r["headers"]["x-warest-session"] for r in messages] == ["beta"]
        message = messages[0]
        verify_standard(message["body"].encode(), message["headers"], [secret])
        verify_warest(message["body"].encode(), message["headers"]["x-warest-signature"], secret, "hooks-a")
        log = await deliveries(app, a, "beta", endpoint="default", event="message_received")
        assert [d["endpoint"] for d in log] == ["default"]


async def test_secrets_are_never_stored_or_shown_in_clear(
    app: AsyncTestClient[Any], database_url: str, schema: str, receiver: ReceiverProcess
) -> None:
    """The original stored webhook secrets in plaintext (DB and sessions.json) and echoed them."""
    a = await two_sessions(app)
    given = "my-own-secret-0123456789-abcdef"
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", secret=given, name="mine")
    generated = (await add_hook(app, a, "beta", f"{receiver.url}/hook"))["secret"]
    assert len(base64.b64decode(generated.removeprefix("whsec_"))) == 32
    import psycopg  # noqa: PLC0415

    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        dump = "\n".join(
            str(row)
            for table in ("warest_events", "wh_endpoints", "rm_sessions")
            for row in conn.execute(f"SELECT * FROM {table}").fetchall()
        )
    for secret in (given, generated):
        assert secret not in dump and base64.b64encode(secret.encode()).decode() not in dump
    for session in ("alpha", "beta"):
        listed = await app.get(f"/api/v1/session/{session}/webhooks", headers=a)
        assert given not in listed.text and generated not in listed.text


async def test_preflight_and_webhooks_are_scoped_to_the_tenant(
    app: AsyncTestClient[Any], receiver: ReceiverProcess
) -> None:
    """The original's preflight had no ownership check (any key could make the server POST)."""
    a = await two_sessions(app)
    other = await tenant(app, "hooks-b")
    preflight = await app.post(
        "/api/v1/webhook/preflight",
        json={"sessionId": "alpha", "url": f"{receiver.url}/x", "secret": "x" * 24},
        headers=other,
    )
    assert preflight.status_code == 404 and preflight.json()["code"] == 1101
    await add_hook(app, a, "alpha", f"{receiver.url}/hook")
    for method, path in (
        ("GET", "/api/v1/session/alpha/webhooks"),
        ("GET", "/api/v1/session/alpha/deliveries"),
        ("DELETE", "/api/v1/session/alpha/webhooks/primary"),
    ):
        response = await app.request(method, path, headers=other)
        assert response.status_code == 404 and response.json()["code"] == 1101, (method, path)
    assert len((await app.get("/api/v1/session/alpha/webhooks", headers=a)).json()["results"]) == 1


async def test_replay_by_time_range(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    await send_text(app, a, "beta", "6281000000001", "early")
    first = await records(hooks, lambda rs: len(rs) == 1)
    middle = json.loads(first[0]["body"])["ts"] + 1
    await send_text(app, a, "beta", "6281000000001", "late")
    await records(hooks, lambda rs: len(rs) == 2)
    hooks.clear()
    since = datetime.fromtimestamp(middle / 1000, UTC).isoformat()
    replay = await app.post("/api/v1/session/alpha/webhooks/primary/replay", json={"since": since}, headers=a)
    assert replay.status_code == 202 and replay.json()["results"][0]["deliveries"] == 1
    again = await records(hooks, lambda rs: len(rs) == 1)
    assert json.loads(again[0]["body"])["data"]["text"] == "late"
    hooks.clear()
    until = await app.post("/api/v1/session/alpha/webhooks/primary/replay", json={"until": middle}, headers=a)
    assert until.json()["results"][0]["deliveries"] == 1
    assert json.loads((await records(hooks, lambda rs: len(rs) == 1))[0]["body"])["data"]["text"] == "early"


async def test_webhooks_can_be_switched_off(database_url: str, schema: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, schema, tmp_path, WAREST_WEBHOOK_ENABLED="false")
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as app:
        a = await two_sessions(app)
        response = await app.get("/api/v1/session/alpha/webhooks", headers=a)
        assert response.status_code == 503 and response.json()["code"] == 8001
        assert "WAREST_WEBHOOK_ENABLED" in response.json()["message"]
    import psycopg  # noqa: PLC0415

    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        tracked = conn.execute("SELECT name FROM projection_tracking ORDER BY name").fetchall()
        assert ("webhook_outbox",) not in tracked
        assert conn.execute("SELECT count(*) FROM wh_events").fetchone() == (0,)


async def test_the_delivery_log_pages_and_names_are_unique(
    app: AsyncTestClient[Any], hooks: ReceiverClient, receiver: ReceiverProcess
) -> None:
    a = await two_sessions(app)
    await add_hook(app, a, "alpha", f"{receiver.url}/hook", events=["message_received"])
    again = await app.post("/api/v1/session/alpha/webhooks", json={"url": f"{receiver.url}/x"}, headers=a)
    refused(again, 409, 2004, message="webhook 'primary' exists")
    for i in range(5):
        await send_text(app, a, "beta", "6281000000001", f"n{i}")
    await records(hooks, lambda rs: len(rs) == 5)
    first = await app.get("/api/v1/session/alpha/deliveries", params={"limit": 3}, headers=a)
    page = first.json()["results"]
    assert len(page) == 3
    assert first.headers["x-warest-next-before"] == f"{page[-1]['position']}:{page[-1]['endpointId']}"
    rest = await app.get(
        "/api/v1/session/alpha/deliveries",
        params={"limit": 3, "before": first.headers["x-warest-next-before"]},
        headers=a,
    )
    positions = [d["position"] for d in page + rest.json()["results"]]
    assert len(positions) == 5 and positions == sorted(positions, reverse=True)
    assert "x-warest-next-before" not in rest.headers


async def test_the_session_shows_its_primary_endpoint_url(
    app: AsyncTestClient[Any], receiver: ReceiverProcess
) -> None:
    """One source of truth: the session's webhookUrl is the endpoint "primary", however it
    was set, changed or removed."""
    a = await two_sessions(app)

    async def shown() -> str:
        info = await app.get("/api/v1/session/info", params={"sessionId": "alpha"}, headers=a)
        return str(info.json()["results"][0]["webhookUrl"])

    assert await shown() == ""
    await add_hook(app, a, "alpha", f"{receiver.url}/one")  # through the webhooks API
    assert await shown() == f"{receiver.url}/one"
    await app.patch("/api/v1/session/alpha/webhooks/primary", json={"url": f"{receiver.url}/two"}, headers=a)
    assert await shown() == f"{receiver.url}/two"
    await app.delete("/api/v1/session/alpha/webhooks/primary", headers=a)
    assert await shown() == ""
