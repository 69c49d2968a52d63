"""A rebuild builds shadow tables and swaps them in: the API keeps answering meanwhile.

It used to empty the live tables and replay the log into them, so authentication (which
reads ``rm_users``) answered 401 until the rebuild reached the caller's user."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from projections import RegistryProjection
from tests.conftest import create_user
from tests.integration.rebuild_support import dump
from warest.config import Settings
from warest.domain.sessions import Session
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner, RebuildRunning, shadow_schema

REGISTRY_TABLES = RegistryProjection.tables


class SlowRegistry(RegistryProjection):
    """The registry read model, a millisecond an event: a rebuild that lasts a while."""

    def process(self, event: Any, cur: psycopg.Cursor[Any], position: int) -> None:
        time.sleep(0.001)
        super().process(event, cur, position)


async def test_the_api_answers_throughout_a_rebuild_and_the_swapped_tables_are_a_fresh_build(
    client: AsyncTestClient[Any], settings: Settings, store: EventStoreApp, committer: GroupCommitter
) -> None:
    url, schema = settings.database_url, settings.database_schema
    user = await create_user(client, "reader", password="password-reader-1")
    headers = {"X-WAREST-API-KEY": user["apiKey"]}
    sessions = [Session.create("OTHER", f"s{i}", None, False, "sandbox") for i in range(600)]
    for future in [committer.submit(s.collect_events()) for s in sessions]:  # the log to replay
        future.result(timeout=30)
    waiter = client.app.state.services.waiter
    assert await waiter.wait_latest(10)

    runner = ProjectionRunner(store, SlowRegistry(), url, schema, batch_size=50)
    done = threading.Event()
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            runner.rebuild()
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            runner.stop()
            done.set()

    thread = threading.Thread(target=rebuild)
    thread.start()
    answers: list[tuple[int, Any]] = []
    created = False
    while not done.is_set():
        me = await client.get("/api/v1/users/me", headers=headers)
        listed = await client.get("/api/v1/session/list", headers=headers)
        answers += [(me.status_code, me.json().get("code")), (listed.status_code, listed.json().get("code"))]
        if not created and len(answers) >= 10:  # a commit while the shadow tables are built
            committer.save(Session.create("OTHER", "during", "mid-rebuild", False, "sandbox"))
            created = True
        await asyncio.sleep(0.01)
    thread.join()
    assert not errors, errors
    assert created and len(answers) >= 20  # the reads ran while the rebuild did
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:5]
    assert {code for _, code in answers} == {1000}

    # After the swap: the session made meanwhile is there, the API reads the new tables, and
    # they are what a rebuild from scratch makes of the log.
    assert await waiter.wait_latest(10)
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    swapped = dump(url, schema, REGISTRY_TABLES)
    assert len(swapped["rm_sessions"]) == 601
    assert any("mid-rebuild" in row for row in swapped["rm_sessions"])
    fresh = ProjectionRunner(store, RegistryProjection(), url, schema)
    try:
        fresh.rebuild()
    finally:
        fresh.stop()
    assert dump(url, schema, REGISTRY_TABLES) == swapped
    with psycopg.connect(url) as conn:
        shadows = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (shadow_schema(schema, "registry"),)
        ).fetchone()
    assert shadows == (0,)  # the shadow schema is gone


def test_the_swapped_tables_keep_the_live_index_names(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """Migrations name indexes (``rm_sessions_autostart``); a swap keeps those names, so a
    later migration that changes one finds it."""
    for i in range(5):
        committer.save(Session.create("REG", f"s{i}", None, True, "sandbox"))
    query = (
        "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %s AND t.relname = ANY(%s)"
        " ORDER BY 1"
    )
    with psycopg.connect(database_url) as conn:
        before = conn.execute(query, (schema, list(REGISTRY_TABLES))).fetchall()
    assert any("rm_sessions_autostart" in name for (name,) in before)
    runner = ProjectionRunner(store, RegistryProjection(), database_url, schema)
    try:
        assert runner.rebuild() == 5
    finally:
        runner.stop()
    with psycopg.connect(database_url) as conn:
        assert conn.execute(query, (schema, list(REGISTRY_TABLES))).fetchall() == before
    assert len(dump(database_url, schema, ["rm_sessions"])["rm_sessions"]) == 5


def test_a_second_rebuild_of_the_same_read_model_is_refused(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """Two rebuilds of one read model would build into (and drop) the same shadow schema."""
    committer.save(Session.create("REG", "s1", None, True, "sandbox"))
    first = ProjectionRunner(store, RegistryProjection(), database_url, schema)
    first.catch_up()
    shadow = shadow_schema(schema, "registry")
    with psycopg.connect(database_url, autocommit=True) as holder:  # a rebuild in progress
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (shadow,))
        holder.execute(f'CREATE SCHEMA "{shadow}"')
        second = ProjectionRunner(store, RegistryProjection(), database_url, schema)
        try:
            with pytest.raises(RebuildRunning, match="a rebuild of registry is already running"):
                second.rebuild()
        finally:
            second.stop()
        exists = holder.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (shadow,)).fetchone()
        assert exists == (1,)  # the running rebuild's shadow schema is left alone
        holder.execute(f'DROP SCHEMA "{shadow}"')
    assert len(dump(database_url, schema, ["rm_sessions"])["rm_sessions"]) == 1
    first.stop()
