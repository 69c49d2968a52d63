"""The group committer loses no batch when its connection breaks: a batch never sent is
written on a new connection; a batch whose write broke off (outcome unknown) is looked up
first and written again only if it did not commit. Each test ends only the committer's own
connection (by its backend pid): other runs share the server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import psycopg
import pytest

from warest.app.ports import ConcurrencyConflict
from warest.domain.sessions import Session
from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.store import EventStoreApp


def new_session(tag: str) -> Session:
    return Session.create("REG", f"{tag}-{uuid.uuid4().hex[:6]}", None, True, "sandbox")


def terminate(database_url: str, pid: int | None) -> None:
    assert pid is not None
    with psycopg.connect(database_url, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        assert row is not None and row[0]


def stored_names(store: EventStoreApp) -> list[str]:
    return [store.repository.get(n.originator_id).name for n in store.select(0, 100)]


async def test_a_batch_after_a_broken_connection_is_written_on_a_new_one(
    store: EventStoreApp, writer: AsyncGroupCommitter, database_url: str
) -> None:
    first = new_session("first")
    await writer.record([first])
    old_pid = writer.backend_pid
    await asyncio.to_thread(terminate, database_url, old_pid)
    second = new_session("second")
    position = await writer.record([second])  # the first write after the break: not lost
    assert position == store.max_position()
    assert stored_names(store) == [first.name, second.name]
    assert writer.reconnects == 1 and writer.backend_pid not in (None, old_pid)


async def test_a_write_cut_off_before_it_committed_is_written_again(
    store: EventStoreApp, writer: AsyncGroupCommitter, database_url: str, schema: str
) -> None:
    """The connection dies while the write waits for the table lock: the transaction never
    committed, the writer cannot know that from the error, looks, and writes it again."""
    await writer.record([new_session("warm-up")])
    blocker = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE warest_events IN EXCLUSIVE MODE")
        cut = new_session("cut")
        saving = asyncio.create_task(writer.record([cut]))

        async def writer_waits_for_the_lock() -> bool:
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                writer.backend_pid,
            )
            return bool(waiting)

        for _ in range(500):
            if await writer_waits_for_the_lock():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the write never reached the server")
        await asyncio.to_thread(terminate, database_url, writer.backend_pid)
        await asyncio.sleep(0.1)
        await tx.rollback()
        position = await asyncio.wait_for(saving, 10)
    finally:
        await blocker.close()
    assert position == store.max_position()
    assert stored_names(store).count(cut.name) == 1
    assert writer.reconnects == 1


async def test_a_write_that_committed_but_lost_its_answer_is_not_reported_as_a_conflict(
    store: EventStoreApp, writer: AsyncGroupCommitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch committed and the connection broke before the answer came: the retry must
    find it stored (same rows, same bytes) instead of failing the save with a conflict."""
    real_write = writer._write
    broken = False

    async def commit_then_lose_the_answer(rows: Any) -> int:
        nonlocal broken
        position = await real_write(rows)
        if not broken:
            broken = True
            assert writer._conn is not None
            writer._conn.terminate()
            raise asyncpg.exceptions.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation"
            )
        return position

    monkeypatch.setattr(writer, "_write", commit_then_lose_the_answer)
    session = new_session("answer-lost")
    position = await writer.record([session])
    assert broken and position == store.max_position()
    assert stored_names(store) == [session.name]


async def test_a_real_conflict_after_a_reconnect_is_still_a_conflict(
    store: EventStoreApp, writer: AsyncGroupCommitter, database_url: str
) -> None:
    session = new_session("taken")
    await writer.record([session])
    stale = store.repository.get(session.id)
    fresh = store.repository.get(session.id)
    fresh.configure(label="mine")
    await writer.record([fresh])
    await asyncio.to_thread(terminate, database_url, writer.backend_pid)
    stale.configure(label="theirs")  # version 2 is taken by different bytes
    with pytest.raises(ConcurrencyConflict):
        await writer.record([stale])
    assert store.repository.get(session.id).label == "mine"
