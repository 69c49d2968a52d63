"""The database goes away under a burst of sends: the real server process on the sandbox,
its PostgreSQL connections (and only its own) terminated twice in the middle of the burst,
then the server restarted. No message id reaches the recipient twice, no text arrives
under two ids, every accepted send is delivered once, and each message has one ``Sent``,
under the id it was queued with."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.e2e.server import ServerProcess, sandbox_env
from tests.e2e.test_sandbox_e2e import ADMIN_KEY, events, status, tenant, until

SENDS = 300
SENDERS = 12
GATEWAY, RECIPIENT = "6281300000001", "6281300000002"


@pytest.fixture
def server(database_url: str, schema: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = sandbox_env(database_url, schema, tmp_path / "data", ADMIN_KEY, WAREST_SEND_WAIT_MS="200")
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def terminate_connections_of(server: ServerProcess, database_url: str) -> int:
    """``pg_terminate_backend`` on the backends serving the server's process tree (the
    worker, its projector...), found by their client ports: other tests' servers sharing
    this PostgreSQL are left alone."""
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    ports = [
        c.laddr.port
        for p in [root, *root.children(recursive=True)]
        for c in p.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == 5432
    ]
    assert ports, "the server holds no PostgreSQL connection"
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE client_addr = '127.0.0.1'::inet AND client_port = ANY(%s) AND pid <> pg_backend_pid()",
            (ports,),
        ).fetchall()
    return sum(1 for (terminated,) in rows if terminated)


def test_no_message_is_sent_twice_when_the_database_goes_away_under_load(
    server: ServerProcess, database_url: str, schema: str
) -> None:
    a = tenant(server, "db-restart")
    assert a.post("/api/v1/session/create", json={"sessionId": "main"}).status_code == 202
    assert a.post("/api/v1/sandbox/scan", json={"sessionId": "main", "phone": GATEWAY}).status_code == 200
    until(lambda: status(a, "main") == "open", what="session open")
    assert a.post("/api/v1/sandbox/accounts", json={"phone": RECIPIENT}).status_code == 201
    key = a.headers["X-WAREST-API-KEY"]

    accepted: dict[str, str] = {}  # text -> message id, for the sends the API accepted
    answered = 0
    lock = threading.Lock()
    local = threading.local()

    def send(i: int) -> None:
        nonlocal answered
        if not hasattr(local, "client"):
            local.client = server.client(key)
        text = f"burst {i}"
        try:
            response = local.client.post(
                "/api/v1/messages/send/text", json={"sessionId": "main", "to": RECIPIENT, "message": text}
            )
        except Exception:  # the server may drop a request while its database is gone
            response = None
        with lock:
            answered += 1
            if response is not None and response.status_code in (200, 202):
                accepted[text] = response.json()["results"][0]["messageId"]

    terminated = 0
    with ThreadPoolExecutor(SENDERS) as pool:
        futures = [pool.submit(send, i) for i in range(SENDS)]
        for mark in (SENDS // 3, 2 * SENDS // 3):
            until(lambda mark=mark: answered >= mark, timeout=60, what=f"{mark} answers")  # type: ignore[misc]
            terminated += terminate_connections_of(server, database_url)
        for future in futures:
            future.result()
    assert terminated > 0
    assert len(accepted) > SENDS // 2, f"only {len(accepted)} of {SENDS} sends were accepted"

    server.stop()
    server.start()
    until(lambda: status(a, "main") == "open", timeout=30, what="session open after the restart")

    def inbox() -> list[tuple[str, str]]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                f"SELECT wa_id, text FROM {schema}.sandbox_inbox WHERE phone = %s ORDER BY id", (RECIPIENT,)
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    until(
        lambda: set(accepted.values()) <= {wa_id for wa_id, _ in inbox()},
        timeout=60,
        what="every accepted send delivered",
    )
    got = inbox()
    twice = [wa_id for wa_id, n in Counter(w for w, _ in got).items() if n > 1]
    assert not twice, f"message ids delivered twice: {twice}"
    texts_twice = [text for text, n in Counter(t for _, t in got).items() if n > 1]
    assert not texts_twice, f"texts delivered under two ids: {texts_twice}"
    delivered = dict((t, w) for w, t in got)
    assert all(delivered[text] == wa_id for text, wa_id in accepted.items())

    # The log: one Sent per message, under the id it was queued with (as soon as the read
    # models' pending list is empty, nothing is left to send).
    def settled() -> bool:
        with psycopg.connect(database_url) as conn:
            return conn.execute(f"SELECT count(*) FROM {schema}.rm_pending_outbound").fetchone() == (0,)

    until(settled, timeout=60, what="no message pending")
    queued = {e["originator_id"]: e["wa_id"] for e in events(database_url, schema, "Message.Queued")}
    sent = Counter(e["originator_id"] for e in events(database_url, schema, "Message.Sent"))
    assert all(n == 1 for n in sent.values()), "a message has two Sent events"
    assert set(sent) == set(queued)
    sent_ids = {e["originator_id"]: e["wa_id"] for e in events(database_url, schema, "Message.Sent")}
    assert sent_ids == queued
    assert {wa_id for wa_id, _ in got} == set(queued.values())
