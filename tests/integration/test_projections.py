"""The registry projection: batched processing, exact rebuilds, exactly-once tracking."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from projections import ALL, RegistryProjection
from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant
from tests.conftest import admin_headers, create_user
from warest.config import Settings
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner


def table_dump(database_url: str, schema: str, table: str) -> list[tuple[Any, ...]]:
    """Every row, in a total order that does not depend on physical storage."""
    return rows_of(database_url, schema, f"SELECT * FROM {table} t ORDER BY (t.*)::text")


def checksum(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


async def populate(client: AsyncTestClient[Any]) -> None:
    """Real events through the API: users, sessions, configuration, deletions, rotations."""
    for i in range(6):
        user = await create_user(client, f"user{i}", password=f"password-{i}-xyz")
        headers = {"X-WAREST-API-KEY": user["apiKey"]}
        for j in range(4):
            await client.post(
                "/api/v1/session/create", json={"sessionId": f"s{j}", "label": f"L{j}"}, headers=headers
            )
        await client.post(
            "/api/v1/session/s1/config", json={"webhookUrl": "https://hooks.example/a"}, headers=headers
        )
        await client.post(
            "/api/v1/session/s2/config", json={"label": "renamed", "autoStart": False}, headers=headers
        )
        await client.delete("/api/v1/session/delete?sessionId=s3", headers=headers)
        await client.post(
            "/api/v1/session/create", json={"sessionId": "s3", "label": "again"}, headers=headers
        )
        if i % 2:
            await client.post(f"/api/v1/users/user{i}/rotate-key", headers=admin_headers())
        if i == 5:
            await client.post("/api/v1/users/user5/disable", headers=admin_headers())


async def converse(client: AsyncTestClient[Any]) -> None:
    """Messages both ways with receipts, reactions, edits, revokes, stars and chat flags."""
    a, b = await tenant(client, "rebuild-a"), await tenant(client, "rebuild-b")
    await open_by_scan(client, a, "sa", "6289000000001")
    await open_by_scan(client, b, "sb", "6289000000002")
    ids = [
        (await send_text(client, a, "sa", "6289000000002", f"t{i}")).json()["results"][0]["messageId"]
        for i in range(4)
    ]
    await send_text(client, b, "sb", "6289000000001", "reply")
    await client.post(
        f"/api/v1/messages/{ids[0]}/action/edit", json={"sessionId": "sa", "message": "t0!"}, headers=a
    )
    await client.post(f"/api/v1/messages/{ids[1]}/action/revoke", json={"sessionId": "sa"}, headers=a)
    await client.post(f"/api/v1/messages/{ids[2]}/action/star", json={"sessionId": "sa"}, headers=a)
    await client.post(
        "/api/v1/messages/action/mute", json={"sessionId": "sa", "to": "6289000000002"}, headers=a
    )

    async def reacted() -> bool:
        response = await client.post(
            f"/api/v1/messages/{ids[3]}/action/reaction", json={"sessionId": "sb", "emoji": "🎉"}, headers=b
        )
        return response.status_code == 200

    await eventually(reacted)
    await client.post("/api/v1/chats/6289000000001/read", json={"sessionId": "sb"}, headers=b)
    await asyncio.sleep(0.5)  # let receipts and relayed actions land
    # b's session deleted and created again: its chats, messages and contacts go with it, and
    # the new incarnation's come (rebuilt in one page, they must come out the same).
    await client.delete("/api/v1/session/delete?sessionId=sb", headers=b)
    await open_by_scan(client, b, "sb", "6289000000002")
    await send_text(client, b, "sb", "6289000000001", "a new life")
    await send_text(client, a, "sa", "6289000000002", "welcome back")
    await client.post(
        "/api/v1/messages/action/archive", json={"sessionId": "sb", "to": "6289000000001"}, headers=b
    )
    await asyncio.sleep(0.5)


async def test_rebuild_reproduces_every_read_model_exactly(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    await populate(client)
    await converse(client)
    url, schema = settings.database_url, settings.database_schema
    waiter = client.app.state.services.waiter  # type: ignore[attr-defined]
    assert await waiter.wait_latest(10)
    tables = [t for projection in ALL for t in projection.tables]
    before = {t: table_dump(url, schema, t) for t in tables}
    assert len(before["rm_users"]) == 9 and len(before["rm_sessions"]) == 26
    for table in (
        "rm_messages",
        "rm_chats",
        "rm_message_reactions",
        "rm_message_edits",
        "rm_message_status",
        "rm_contacts",
        "rm_message_index",
        "rm_streams",
    ):
        assert before[table], table  # every read model has rows to compare
    # The re-created session shows only its new incarnation's messages.
    texts = rows_of(url, schema, "SELECT text FROM rm_messages WHERE session_id = 'sb' ORDER BY created_at")
    assert texts == [("a new life",), ("welcome back",)]

    env = {"WAREST_DATABASE_URL": url, "WAREST_DATABASE_SCHEMA": schema, "WAREST_DATA_DIR": settings.data_dir}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "warest.cli", "projections", "rebuild"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for projection in ALL:
        assert f"rebuilt {projection.name}" in result.stdout
    assert "100%" in result.stderr  # the progress bar ran to the end

    after = {t: table_dump(url, schema, t) for t in tables}
    for table in tables:
        assert checksum(after[table]) == checksum(before[table]), table
    # The running server's read model still answers after the rebuild.
    listed = await client.get("/api/v1/users", headers=admin_headers())
    assert len(listed.json()["results"]) == 9


def test_unknown_projection_name_is_refused(settings: Settings) -> None:
    env = {
        "WAREST_DATABASE_URL": settings.database_url,
        "WAREST_DATABASE_SCHEMA": settings.database_schema,
        "WAREST_DATA_DIR": settings.data_dir,
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "warest.cli", "projections", "rebuild", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "unknown projection" in result.stderr


def test_concurrent_runners_never_double_apply(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """Two runners (e.g. two processes) on one read model: each event applied exactly once."""
    sessions = [Session.create("REG", f"s{i}", None, True, "sandbox") for i in range(300)]
    futures = [committer.submit(session.collect_events()) for session in sessions]
    for future in futures:
        future.result(timeout=30)
    runners = [
        ProjectionRunner(store, RegistryProjection(), database_url, schema, batch_size=17) for _ in range(2)
    ]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = table_dump(database_url, schema, "rm_sessions")
    assert len(rows) == 300  # an INSERT applied twice would have raised a unique violation
    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        position = conn.execute("SELECT position FROM projection_tracking WHERE name = 'registry'").fetchone()
    assert position is not None and position[0] == store.max_position()
    for runner in runners:
        runner.stop()


def test_runner_resumes_from_its_tracked_position(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    for i in range(10):
        committer.save(Session.create("REG", f"a{i}", None, True, "sandbox"))
    first = ProjectionRunner(store, RegistryProjection(), database_url, schema)
    assert first.catch_up() == 10
    first.stop()
    for i in range(5):
        committer.save(Session.create("REG", f"b{i}", None, True, "sandbox"))
    second = ProjectionRunner(store, RegistryProjection(), database_url, schema)
    assert second.catch_up() == 5  # only the new events
    assert len(table_dump(database_url, schema, "rm_sessions")) == 15
    second.stop()


def test_addresses_this_version_cannot_parse_do_not_stop_the_read_models(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """An inbound message from an address the JID rules reject (a new WhatsApp server, a
    malformed id) is an event all the same: every read model takes it and goes on. The chats
    and contacts projections used to fail on it for ever, and nothing after it was projected."""
    odd = [("628@s.whatsapp.net", "m1"), ("12345@bot", "m2"), ("62811111@s.whatsapp.net", "m3")]
    for sender, wa_id in odd:
        committer.save(Message.receive("REG", "s1", wa_id, chat=sender, sender=sender, text=wa_id))
    for projection_class in ALL:
        runner = ProjectionRunner(store, projection_class(), database_url, schema)
        try:
            runner.catch_up()
            assert runner.position == store.max_position(), projection_class.name
        finally:
            runner.stop()
    chats = {row[0] for row in rows_of(database_url, schema, "SELECT jid FROM rm_chats")}
    assert chats == {sender for sender, _ in odd}
    contacts = rows_of(database_url, schema, "SELECT jid FROM rm_contacts")
    assert contacts == [("62811111@s.whatsapp.net",)]  # only the one address that parses


def rows_of(database_url: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return conn.execute(query).fetchall()
