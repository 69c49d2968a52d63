"""The real server process over HTTP: two tenants on the sandbox network, login by scan
and by pair code, text both ways with receipts, isolation, and a kill -9 with messages
still queued: after the restart the sessions are open again and the messages go out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.server import ServerProcess, sandbox_env

ADMIN_KEY = "wrst_e2e-sandbox-admin-key-0123456789abcdefghijklmno"


def until(check: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def server(database_url: str, schema: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = sandbox_env(database_url, schema, tmp_path / "data", ADMIN_KEY, WAREST_SEND_WAIT_MS="300")
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def tenant(server: ServerProcess, name: str) -> httpx.Client:
    with server.client(ADMIN_KEY) as admin:
        response = admin.post("/api/v1/users", json={"username": name})
        assert response.status_code == 201, response.text
        return server.client(response.json()["results"][0]["apiKey"])


def status(client: httpx.Client, session: str) -> str:
    """The session's status, or the answer's code while it cannot tell (e.g. right after a
    restart, when the read models are still catching up)."""
    answer = client.get(f"/api/v1/session/info?sessionId={session}")
    if answer.status_code != 200:
        return f"answered {answer.status_code}"
    return str(answer.json()["results"][0]["status"])


def events(database_url: str, schema: str, suffix: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT convert_from(state, 'UTF8')::jsonb FROM {schema}.warest_events"
            " WHERE topic LIKE %s ORDER BY notification_id",
            (f"%{suffix}",),
        ).fetchall()
    return [r[0] for r in rows]


def test_two_tenants_scan_and_pair_exchange_text_and_survive_kill(
    server: ServerProcess, database_url: str, schema: str
) -> None:
    a, b = tenant(server, "tenant-a"), tenant(server, "tenant-b")

    # A logs in by scanning the QR.
    created = a.post("/api/v1/session/create", json={"sessionId": "shop", "label": "A shop"})
    assert created.status_code == 202 and created.json()["code"] == 1107
    qr = created.json()["results"][0]["qrString"]
    assert (
        a.post("/api/v1/sandbox/scan", json={"sessionId": "shop", "phone": "6281100000001"}).status_code
        == 200
    )
    until(lambda: status(a, "shop") == "open", what="A open")

    # B logs in with a pairing code.
    paired = b.get("/api/v1/session/create/pair-code", params={"sessionId": "desk", "phone": "6281100000002"})
    code = paired.json()["results"][0]["pairCode"]
    assert paired.status_code == 200 and len(code) == 9
    # Tenant B sees neither A's session nor its QR; A cannot use B's pairing code.
    assert b.get("/api/v1/session/info?sessionId=shop").status_code == 404
    b_create_shop = b.post("/api/v1/session/create", json={"sessionId": "shop"})
    assert b_create_shop.json()["results"][0]["registryUser"] != created.json()["results"][0]["registryUser"]
    assert b_create_shop.json()["results"][0].get("qrString") != qr
    assert a.post("/api/v1/sandbox/pair", json={"phone": "6281100000002", "code": code}).status_code == 404
    assert b.post("/api/v1/sandbox/pair", json={"phone": "6281100000002", "code": code}).status_code == 200
    until(lambda: status(b, "desk") == "open", what="B open")

    # Text both ways, with receipts.
    to_b = a.post(
        "/api/v1/messages/send/text", json={"sessionId": "shop", "to": "6281100000002", "message": "hi B"}
    )
    to_a = b.post(
        "/api/v1/messages/send/text", json={"sessionId": "desk", "to": "6281100000001", "message": "hi A"}
    )
    assert to_b.status_code == to_a.status_code == 200
    id_b, id_a = to_b.json()["results"][0]["messageId"], to_a.json()["results"][0]["messageId"]

    def delivered(wa_id: str) -> bool:
        return any(
            e["originator_id"]
            for e in events(database_url, schema, "Message.StatusChanged")
            if e["status"] == "delivered" and e.get("by") and wa_id in str(receipts_for(wa_id))
        )

    def receipts_for(wa_id: str) -> list[str]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                f"SELECT convert_from(e.state, 'UTF8')::jsonb->>'status' FROM {schema}.warest_events e"
                f" JOIN {schema}.rm_message_index i ON i.message_id = e.originator_id"
                " WHERE i.wa_id = %s AND e.topic LIKE '%%StatusChanged' ORDER BY e.notification_id",
                (wa_id,),
            ).fetchall()
        return [r[0] for r in rows]

    until(lambda: receipts_for(id_b) == ["server", "delivered"], what="receipts of A's message")
    until(lambda: receipts_for(id_a) == ["server", "delivered"], what="receipts of B's message")
    received = {e["text"] for e in events(database_url, schema, "Message.Received")}
    assert {"hi A", "hi B"} <= received

    # Messages stuck in the queue when the process dies are sent after the restart.
    assert a.post("/api/v1/sandbox/accounts", json={"phone": "6281100000009"}).status_code == 201
    assert (
        a.post(
            "/api/v1/sandbox/faults", json={"kind": "slow", "sessionId": "shop", "delayMs": 60000}
        ).status_code
        == 200
    )
    queued = a.post(
        "/api/v1/messages/send/text",
        json={"sessionId": "shop", "to": "6281100000009", "message": "survives a crash"},
    )
    assert queued.status_code == 202 and queued.json()["results"][0]["status"] == "queued"
    more = a.post(
        "/api/v1/messages/send/text", json={"sessionId": "shop", "to": "6281100000009", "message": "me too"}
    )
    assert more.json()["results"][0]["status"] == "queued"
    server.kill()
    server.start()

    until(lambda: status(a, "shop") == "open", what="A open after restart")
    until(lambda: status(b, "desk") == "open", what="B open after restart")

    def inbox() -> list[str]:
        response = a.get("/api/v1/sandbox/accounts/6281100000009/inbox")
        return [m["text"] for m in response.json()["results"]]

    until(lambda: inbox() == ["survives a crash", "me too"], what="queued messages delivered in order")
    sent = [e for e in events(database_url, schema, "Message.Sent")]
    assert len([e for e in events(database_url, schema, "Message.Queued")]) == len(sent)
    # And the sessions work as before.
    again = a.post(
        "/api/v1/messages/send/text", json={"sessionId": "shop", "to": "6281100000002", "message": "back"}
    )
    assert again.status_code == 200


def test_workers_exit_when_the_supervisor_is_killed(server: ServerProcess) -> None:
    """SIGKILL to the `warest serve` process alone: its worker must not keep serving."""
    assert server.proc is not None
    with server.client() as client:
        assert client.get("/api/v1/server/ping").status_code == 200
    server.proc.kill()  # the parent only, not the process group
    server.proc.wait()

    def port_closed() -> bool:
        try:
            httpx.get(f"{server.base}/api/v1/server/ping", timeout=0.5)
        except httpx.HTTPError:
            return True
        return False

    until(port_closed, timeout=10, what="orphaned worker gone")
