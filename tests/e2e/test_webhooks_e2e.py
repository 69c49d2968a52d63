"""Webhooks through the real server process and a real receiver process: a kill -9 of the
gateway in the middle of deliveries loses nothing, keeps each session's order, and the
deliveries repeated after the restart carry the same ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.receiver import ReceiverClient, ReceiverProcess
from tests.e2e.server import ServerProcess, sandbox_env
from tests.e2e.test_sandbox_e2e import ADMIN_KEY, events, status, tenant, until

PER_SESSION = 15
SESSIONS = {"s1": "6281200000001", "s2": "6281200000002"}
SENDER = "6281200000009"


@pytest.fixture
def server(database_url: str, schema: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = sandbox_env(
        database_url,
        schema,
        tmp_path / "data",
        ADMIN_KEY,
        WAREST_WEBHOOK_ALLOW_PRIVATE="true",
        WAREST_WEBHOOK_BACKOFF_MS="50",
        WAREST_WEBHOOK_JITTER_MS="10",
        WAREST_WEBHOOK_RETRIES="10",
        WAREST_WEBHOOK_TIMEOUT_MS="2000",
    )
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def received(hooks: ReceiverClient, session: str) -> list[dict[str, Any]]:
    return [
        json.loads(r["body"]) | {"_headers": r["headers"]}
        for r in hooks.records(session=session, event="message_received")
        if r["status"] == 200
    ]


def test_kill_9_in_the_middle_of_deliveries_loses_nothing(
    server: ServerProcess, receiver: ReceiverProcess, database_url: str, schema: str
) -> None:
    hooks = receiver.client()
    hooks.set_rules([{"delay_ms": 100}])  # a slow receiver: deliveries are in flight when we kill
    shop = tenant(server, "hooked")
    assert shop.post("/api/v1/sandbox/accounts", json={"phone": SENDER}).status_code == 201
    for session, phone in SESSIONS.items():
        created = shop.post("/api/v1/session/create", json={"sessionId": session, "engine": "sandbox"})
        assert created.status_code == 202, created.text
        assert (
            shop.post("/api/v1/sandbox/scan", json={"sessionId": session, "phone": phone}).status_code == 200
        )
        until(lambda session=session: status(shop, session) == "open", what=f"{session} open")
        hook = shop.post(
            f"/api/v1/session/{session}/webhooks",
            json={"url": f"{receiver.url}/hook", "events": ["message_received"]},
        )
        assert hook.status_code == 201, hook.text
    for i in range(PER_SESSION):
        for session, phone in SESSIONS.items():
            sent = shop.post(
                "/api/v1/sandbox/messages", json={"from": SENDER, "to": phone, "text": f"{session}-{i}"}
            )
            assert sent.status_code == 200, sent.text

    # Every inbound message is in the log (what the gateway owes the receivers) ...
    total = PER_SESSION * len(SESSIONS)
    until(lambda: len(events(database_url, schema, "Message.Received")) == total, what="inbound recorded")
    # ... and some of it has been delivered when the gateway dies.
    until(lambda: len(hooks.records()) >= 4, what="some deliveries before the kill")
    server.kill()
    before = len(hooks.records())
    assert before < 2 * PER_SESSION, "everything was delivered before the kill: the test proves nothing"
    server.start()

    for session in SESSIONS:
        until(
            lambda session=session: (
                len({b["data"]["eventId"] for b in received(hooks, session)}) == PER_SESSION
            ),
            timeout=30,
            what=f"every event of {session} delivered",
        )
        bodies = received(hooks, session)
        seen: dict[str, tuple[str, int]] = {}
        highest = 0
        for body in bodies:
            event_id, sequence = body["data"]["eventId"], body["data"]["sequence"]
            webhook_id = body["_headers"]["webhook-id"]
            if event_id in seen:  # a repeat (at least once): same ids, never ahead of the lane
                assert seen[event_id] == (webhook_id, sequence)
                assert sequence <= highest
                continue
            assert sequence > highest, f"{session}: event {sequence} arrived after {highest}"
            seen[event_id] = (webhook_id, sequence)
            highest = sequence
        texts = [b["data"]["text"] for b in bodies]
        assert sorted(set(texts), key=texts.index) == [f"{session}-{i}" for i in range(PER_SESSION)]
    hooks.close()
