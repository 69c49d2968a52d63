"""One tenant's poisoned input never stops another tenant's work (issue 11).

A real server process and a real webhook receiver. Tenant "mallory" sends NUL bytes, lone
surrogates, 64 KB strings, RTL marks and emoji into every free-text field the API accepts
(refused with a 400 naming the field where WhatsApp and the read models cannot hold them),
and her external sandbox account, which stands for WhatsApp and cannot be refused, sends a
NUL text and carries a NUL push name. Then tenant "victor" sends, reads his read models,
gets his webhooks, and the server restarts and serves him again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.receiver import ReceiverProcess
from tests.e2e.server import ServerProcess, sandbox_env
from tests.e2e.test_sandbox_e2e import ADMIN_KEY, status, tenant, until

NUL = "poison\x00byte"
BIG = "x" * 65_536
FINE = ["\u202eevil\u200f mark", "emoji \U0001f600\U0001f44d\U0001f3fd", BIG]
MALLORY_PHONE, MALLORY_EXT = "6281300000001", "6281300000009"
VICTOR_PHONE, VICTOR_EXT = "6281300000002", "6281300000008"


@pytest.fixture
def server(database_url: str, schema: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = sandbox_env(
        database_url,
        schema,
        tmp_path / "data",
        ADMIN_KEY,
        WAREST_WEBHOOK_ALLOW_PRIVATE="true",
        WAREST_WEBHOOK_BACKOFF_MS="50",
        WAREST_SEND_WAIT_MS="2000",
    )
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def received_texts(database_url: str, schema: str) -> list[str]:
    """The texts of the Message.Received events, decoded here (jsonb refuses \\u0000)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT convert_from(state, 'UTF8') FROM {schema}.warest_events"
            " WHERE topic LIKE '%%Message.Received' ORDER BY notification_id"
        ).fetchall()
    return [json.loads(r[0]).get("text") for r in rows]


def refused(response: httpx.Response, field: str) -> None:
    """A 400 in the envelope that names the offending field."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] in {2001, 2002, 2008}, body
    assert field in body["message"], body


def raw_json(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """A body with a JSON escape that no Python str round-trips (a lone surrogate)."""
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def linked(client: httpx.Client, session: str, phone: str) -> None:
    created = client.post("/api/v1/session/create", json={"sessionId": session})
    assert created.status_code == 202, created.text
    scanned = client.post("/api/v1/sandbox/scan", json={"sessionId": session, "phone": phone})
    assert scanned.status_code == 200, scanned.text
    until(lambda: status(client, session) == "open", what=f"{session} open")


def send(client: httpx.Client, session: str, to: str, message: str) -> httpx.Response:
    body = {"sessionId": session, "to": to, "message": message}
    return client.post("/api/v1/messages/send/text", json=body)


def chats(client: httpx.Client, session: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/chats", params={"sessionId": session})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["results"][0]["items"]
    return items


def victor_works(server: ServerProcess, victor: httpx.Client, receiver: ReceiverProcess, tag: str) -> None:
    """Victor's send, inbound message, read models and webhook all work."""
    sent = send(victor, "v", VICTOR_EXT, f"out {tag}")
    assert sent.status_code == 200, sent.text
    assert sent.json()["results"][0]["status"] in {"sent", "server", "delivered", "read"}
    inbound = victor.post(
        "/api/v1/sandbox/messages", json={"from": VICTOR_EXT, "to": VICTOR_PHONE, "text": f"in {tag}"}
    )
    assert inbound.status_code == 200, inbound.text
    hooks = receiver.client()
    until(
        lambda: any(
            json.loads(r["body"])["data"].get("text") == f"in {tag}"
            for r in hooks.records(session="v", event="message_received")
        ),
        timeout=20,
        what=f"victor's webhook for 'in {tag}'",
    )
    hooks.close()
    until(
        lambda: any(c.get("lastMessage", {}).get("text") == f"in {tag}" for c in chats(victor, "v"))
        or any(f"in {tag}" in json.dumps(c) for c in chats(victor, "v")),
        what=f"victor's chat shows 'in {tag}'",
    )
    health = httpx.get(f"{server.base}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["results"][0]["status"] == "healthy"


def test_poison_from_one_tenant_leaves_the_other_working(
    server: ServerProcess, receiver: ReceiverProcess, database_url: str, schema: str
) -> None:
    mallory, victor = tenant(server, "mallory"), tenant(server, "victor")
    linked(mallory, "m", MALLORY_PHONE)
    linked(victor, "v", VICTOR_PHONE)
    for client, session in ((mallory, "m"), (victor, "v")):
        hook = client.post(
            f"/api/v1/session/{session}/webhooks",
            json={"url": f"{receiver.url}/hook", "events": ["message_received"]},
        )
        assert hook.status_code == 201, hook.text

    # The external accounts stand for WhatsApp: a NUL push name cannot be refused there.
    assert (
        mallory.post(
            "/api/v1/sandbox/accounts", json={"phone": MALLORY_EXT, "pushName": "Evil\x00Name"}
        ).status_code
        == 201
    )
    assert victor.post("/api/v1/sandbox/accounts", json={"phone": VICTOR_EXT}).status_code == 201

    # What the API can refuse, it refuses, naming the field.
    refused(send(mallory, "m", MALLORY_EXT, NUL), "message")
    refused(send(mallory, "m", MALLORY_EXT, "a" * 65_537), "message")
    refused(
        mallory.post(
            "/api/v1/messages/send/text",
            json={"sessionId": "m", "to": MALLORY_EXT, "message": "hi", "replyMessageId": NUL},
        ),
        "replyMessageId",
    )
    refused(
        mallory.post(
            "/api/v1/session/m/webhooks",
            json={"url": f"{receiver.url}/other", "name": "other", "description": NUL},
        ),
        "description",
    )
    refused(mallory.post("/api/v1/session/create", json={"sessionId": "m2", "label": NUL}), "label")
    refused(mallory.get("/api/v1/chats", params={"sessionId": "m", "search": NUL}), "search")
    lone = raw_json(
        mallory,
        "/api/v1/messages/send/text",
        '{"sessionId": "m", "to": "' + MALLORY_EXT + '", "message": "x\\ud800y"}',
    )
    assert lone.status_code == 400, lone.text
    assert lone.json()["code"] in {2002, 2008}, lone.text

    # What is fine goes through: RTL marks, emoji, a 64 KB text.
    for text in FINE:
        answer = send(mallory, "m", MALLORY_EXT, text)
        assert answer.status_code == 200, answer.text[:500]

    # From WhatsApp's side: a NUL text arrives, is recorded as received, and made safe where
    # it is written.
    inbound = mallory.post(
        "/api/v1/sandbox/messages", json={"from": MALLORY_EXT, "to": MALLORY_PHONE, "text": NUL}
    )
    assert inbound.status_code == 200, inbound.text
    until(
        lambda: NUL in received_texts(database_url, schema),
        what="the poisoned inbound message recorded as received",
    )
    until(
        lambda: "poison\ufffdbyte" in json.dumps(chats(mallory, "m"), ensure_ascii=False)
        or any(
            m.get("text") == "poison\ufffdbyte"
            for m in mallory.get(
                f"/api/v1/chats/{MALLORY_EXT}/messages", params={"sessionId": "m"}
            ).json()["results"][0]["items"]
        ),
        what="mallory's read model shows the text made safe",
    )

    # Victor is not held back, now or after a restart.
    victor_works(server, victor, receiver, "before restart")
    server.stop()
    server.start()
    victor_works(server, victor, receiver, "after restart")
    # And mallory's own session still works too.
    assert send(mallory, "m", MALLORY_EXT, "still here").status_code == 200
