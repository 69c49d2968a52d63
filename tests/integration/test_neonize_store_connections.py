"""A neonize session that cannot reach WhatsApp does not leak PostgreSQL connections.

goneonize opens a database pool for every client and never closes it; a session whose
client is restarted at every reconnect attempt used to keep one more server connection
per attempt (two a minute, until the server ran out). This runs the real goneonize
client on a PostgreSQL device store; WhatsApp is "unreachable" through a proxy address on
127.0.0.1 that refuses connections, so each client fails at once and is replaced. The
connections are counted by the clients' own ``application_name`` prefix (unique to this
test's session), across the restarts."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from tests.integration.test_neonize_engine import RecordingListener, eventually
from warest.app.engine import SessionRef
from warest.infra.engines.neonize import NeonizeConnection
from warest.infra.engines.neonize.client import NeonizeClient, new_aclient
from warest.infra.engines.neonize.store import PostgresDeviceStore

RESTARTS = 6


def connections(database_url: str, prefix: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE %s",
            (prefix + "%",),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_restarted_clients_leave_no_connections_open(database_url: str) -> None:
    store = PostgresDeviceStore(database_url)
    session = SessionRef("leak", f"s-{uuid.uuid4().hex[:8]}")
    prefix = store.application_prefix(session)
    clients: list[NeonizeClient] = []

    def factory(database: str, client_id: str) -> NeonizeClient:
        assert f"application_name={prefix}" in database
        client = new_aclient(database, client_id)
        clients.append(client)
        return client

    listener = RecordingListener()
    connection = NeonizeConnection(
        session,
        listener,
        store=store,
        client_factory=factory,
        proxy_for=lambda _s: "socks5://127.0.0.1:1",  # refused at once: nothing leaves the host
        reconnect_base_s=0.05,
        reconnect_max_s=0.1,
    )
    counts: list[int] = []
    try:
        await connection.start()
        for restarts in range(1, RESTARTS + 1):
            await eventually(lambda n=restarts: len(clients) > n, timeout=30)  # type: ignore[misc]
            counts.append(await asyncio.to_thread(connections, database_url, prefix))
        assert len([c for c in listener.calls if c[0] == "reconnecting"]) >= RESTARTS
    finally:
        await connection.close()
        await store.wipe(session)
    # at most the live client's pool at any time, not one more per restart
    assert max(counts) <= 2, counts
    assert await asyncio.to_thread(connections, database_url, prefix) == 0


async def test_two_postgres_sessions_in_one_database_both_get_their_store(database_url: str) -> None:
    """whatsmeow's upgrade looked for its version table in any schema: the second session's
    store was never created ("relation whatsmeow_version does not exist")."""
    from neonize.aioze.client import ClientFactory  # noqa: PLC0415

    store = PostgresDeviceStore(database_url)
    tag = uuid.uuid4().hex[:8]
    first, second = SessionRef("two", f"a-{tag}"), SessionRef("two", f"b-{tag}")
    try:
        for session in (first, second):
            location = await store.prepare(session)
            assert await asyncio.to_thread(ClientFactory.get_all_devices_from_db, location) == []
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM information_schema.tables"
                    " WHERE table_schema = %s AND table_name = 'whatsmeow_device'",
                    (store.schema(session),),
                ).fetchone()
            assert row is not None and row[0] == 1
    finally:
        await store.wipe(first)
        await store.wipe(second)
