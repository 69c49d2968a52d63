"""The server's group commit on the event loop (asyncpg): the same guarantees as the library's
recorder in lock mode, checked on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid

import psycopg
import pytest

from tests.integration.tailing import follow
from warest.app.ports import ConcurrencyConflict
from warest.domain.sessions import Session
from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.store import EventStoreApp, postgres_env


def new_session(i: int) -> Session:
    return Session.create("REG", f"s-{i}-{uuid.uuid4().hex[:6]}", None, True, "sandbox")


async def test_events_are_readable_by_the_library_and_positions_are_returned(
    store: EventStoreApp, writer: AsyncGroupCommitter
) -> None:
    session = new_session(1)
    session.configure(label="renamed")
    position = await writer.record([session])
    assert position == store.max_position() and position >= 2
    loaded = store.repository.get(session.id)  # written here, decoded by the library's mapper
    assert loaded.version == 2 and loaded.label == "renamed" and loaded.name == session.name
    assert await writer.record([]) == 0  # nothing pending: nothing written


async def test_concurrent_saves_share_transactions(store: EventStoreApp, writer: AsyncGroupCommitter) -> None:
    sessions = [new_session(i) for i in range(200)]
    positions = await asyncio.gather(*(writer.record([s]) for s in sessions))
    assert writer.saved_events == 200 and writer.batches < 200  # several saves per transaction
    assert len(store.select(0, 500)) == 200
    for session, position in zip(sessions, positions, strict=True):
        own = next(n.id for n in store.select(0, 500) if n.originator_id == session.id)
        assert position >= own  # waiting for ``position`` waits for the save's own events


async def test_a_conflict_fails_only_the_conflicting_save(
    store: EventStoreApp, writer: AsyncGroupCommitter
) -> None:
    session = new_session(1)
    await writer.record([session])
    stale_a = store.repository.get(session.id)
    stale_b = store.repository.get(session.id)
    stale_a.configure(label="from a")
    stale_b.configure(label="from b")
    others = [new_session(i) for i in range(10, 20)]
    outcomes = await asyncio.gather(
        writer.record([stale_a]),
        writer.record([stale_b]),
        *(writer.record([s]) for s in others),
        return_exceptions=True,
    )
    conflicts = [o for o in outcomes if isinstance(o, ConcurrencyConflict)]
    assert len(conflicts) == 1
    assert all(isinstance(o, int) for o in outcomes[2:])  # unrelated saves went through
    assert store.repository.get(session.id).label in {"from a", "from b"}
    for other in others:
        assert store.repository.get(other.id).version == 1


async def test_a_caller_that_gives_up_does_not_stop_the_writer_nor_its_write(
    store: EventStoreApp, writer: AsyncGroupCommitter
) -> None:
    abandoned = asyncio.create_task(writer.record([new_session(1)]))
    await asyncio.sleep(0)
    abandoned.cancel()
    assert await writer.record([new_session(2)]) >= 1
    assert len(store.select(0, 10)) == 2  # the abandoned save was written all the same


async def test_a_tailing_reader_misses_nothing_while_the_loop_and_threads_write(
    store: EventStoreApp, writer: AsyncGroupCommitter
) -> None:
    """The table lock keeps commit order = id order across both writers (this one and the
    library's put() in threads, as the command line and other processes do)."""
    seen: list[int] = []
    done = threading.Event()
    expected = 600 + 4 * 100

    def threaded(worker: int) -> None:
        for t in range(100):
            store.save(new_session(100_000 + worker * 1000 + t))

    reader = threading.Thread(target=follow, args=(store, seen, done))
    reader.start()
    threads = [threading.Thread(target=threaded, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for chunk in range(30):
        await asyncio.gather(*(writer.record([new_session(chunk * 100 + i)]) for i in range(20)))
    for thread in threads:
        await asyncio.to_thread(thread.join)
    done.set()
    await asyncio.to_thread(reader.join, 130)
    all_ids = [n.id for n in store.select(0, expected + 10)]
    assert len(all_ids) == expected
    assert seen == all_ids  # same ids, same order: nothing skipped, nothing repeated


async def test_a_lost_connection_loses_no_save_and_the_writer_reconnects(
    store: EventStoreApp, writer: AsyncGroupCommitter, database_url: str
) -> None:
    await writer.record([new_session(1)])
    with psycopg.connect(database_url, autocommit=True) as admin:
        # only this writer's own connection: other runs share the server
        admin.execute("SELECT pg_terminate_backend(%s)", (writer.backend_pid,))
    assert await writer.record([new_session(2)]) >= 2  # written on a new connection, not lost
    assert await writer.record([new_session(3)]) >= 3
    names = {store.repository.get(n.originator_id).name for n in store.select(0, 10)}
    assert len(names) == 3 and writer.reconnects == 1


async def test_a_schema_without_the_append_function_is_refused_at_start(
    database_url: str, schema: str
) -> None:
    """The writer's statements live in a migration: without it the server must not start
    (rather than fail every save later with an unknown function)."""
    bare = f"{schema}_bare"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{bare}"')
    try:
        store = await asyncio.to_thread(lambda: EventStoreApp(env=postgres_env(database_url, bare, 2)))
        committer = AsyncGroupCommitter(store, database_url, bare)
        with pytest.raises(RuntimeError, match="apply the migrations first"):
            await committer.start()
        with pytest.raises(RuntimeError, match="not running"):
            await committer.record([new_session(0)])
        store.close()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{bare}" CASCADE')
