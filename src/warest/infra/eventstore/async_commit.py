"""Group commit on the event loop: the server's saves written through asyncpg.

The same table, the same rules as the library's recorder in lock mode (see ``store.py``):
one transaction per batch takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` (commit order = id
order, so a tailing reader never skips an event), sends ``NOTIFY`` on the recorder's channel
and inserts the batch; a version conflict in a batch is retried submission by submission,
so only the conflicting caller hears of it. The statements are those of the database
function ``warest_append`` (``migrations/0010_append_function.sql``), called in autocommit:
one round trip per batch instead of five, each of which waited for a busy event loop.

Why not the library's ``put()`` in a writer thread (``GroupCommitter``, still used by the
command line and the projector)? In a server worker that thread shares the GIL with the event
loop: every return from the database waits for the loop to let go of the GIL, and the
library dumps each batch through psycopg's pure-Python composite-type adapter. A 64-event
batch took 7 ms at p50 and 22 ms at p99 under a send load (docs/performance.md). Here the
loop itself awaits the database, and asyncpg encodes the four arrays in C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from warest.app.ports import ConcurrencyConflict
from warest.infra.eventstore.store import EventStoreApp

log = logging.getLogger("warest.eventstore")

CommitListener = Callable[[int], None]
APPEND_FUNCTION_TARGETS = ("warest_events", "warest_events")
"""The events table and notification channel that ``warest_append`` writes to."""


@dataclass(slots=True)
class _Submission:
    rows: tuple[list[Any], list[int], list[str], list[bytes]]
    future: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class AsyncGroupCommitter:
    def __init__(
        self,
        store: EventStoreApp,
        database_url: str,
        schema: str,
        *,
        window_s: float = 0.002,
        max_batch_events: int = 1000,
    ) -> None:
        self._mapper = store.mapper
        self._url = database_url
        self._schema = schema
        self._window_s = window_s
        self._max_batch = max_batch_events
        if (store.events_table, store.channel) != APPEND_FUNCTION_TARGETS:
            raise ValueError(f"warest_append writes {APPEND_FUNCTION_TARGETS}, not {store.events_table}")
        self._append_sql = f'SELECT "{schema}".warest_append($1::uuid[], $2::int8[], $3::text[], $4::bytea[])'
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._listeners: list[CommitListener] = []
        self._conn: asyncpg.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        self.saved_events = 0

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(max_position)`` is called on the event loop after each commit."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._conn = await self._connect()
        signature = f'"{self._schema}".warest_append(uuid[], bigint[], text[], bytea[])'
        if await self._conn.fetchval("SELECT to_regprocedure($1)", signature) is None:
            await self._conn.close()
            self._conn = None
            raise RuntimeError(f"{signature} is missing: apply the migrations first (warest migrate)")
        self._writer = asyncio.create_task(self._run(), name="warest-group-commit")

    async def stop(self) -> None:
        """Writes everything already submitted, then closes the connection."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def record(self, aggregates: Sequence[Any]) -> int:
        """Records the pending events of ``aggregates`` atomically; returns the highest new
        position (0 when there was nothing to record). ``ConcurrencyConflict`` on a taken version."""
        ids: list[Any] = []
        versions: list[int] = []
        topics: list[str] = []
        states: list[bytes] = []
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                stored = self._mapper.to_stored_event(event)
                ids.append(stored.originator_id)
                versions.append(stored.originator_version)
                topics.append(stored.topic)
                states.append(stored.state)
        if not ids:
            return 0
        if self._writer is None:
            raise RuntimeError("the group committer is not running")
        submission = _Submission((ids, versions, topics, states))
        self._queue.put_nowait(submission)
        # The write goes on if the caller stops waiting: cancelling a wait does not cancel it.
        return await asyncio.shield(submission.future)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, stop = await self._gather(first)
            await self._write_batch(batch)
            if stop:
                return

    async def _gather(self, first: _Submission) -> tuple[list[_Submission], bool]:
        """What callers submit within the window after ``first`` (and whether to stop after)."""
        batch = [first]
        size = len(first.rows[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._window_s
        while size < self._max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.rows[0])
        return batch, False

    async def _write_batch(self, batch: list[_Submission]) -> None:
        try:
            position = await self._write([s.rows for s in batch])
        except ConcurrencyConflict as conflict:
            if len(batch) == 1:
                _settle(batch[0].future, error=conflict)
                return
            for submission in batch:  # find the conflicting caller; the others are written
                await self._write_batch([submission])
            return
        except Exception as error:  # the database is down: every caller must hear it
            log.warning("event store write failed: %s", error)
            for submission in batch:
                _settle(submission.future, error=error)
            await self._reconnect()
            return
        for submission in batch:  # one commit: everything in it becomes visible at once
            _settle(submission.future, position)
        self.batches += 1
        self.saved_events += sum(len(s.rows[0]) for s in batch)
        for listener in self._listeners:
            listener(position)

    async def _write(self, rows: list[tuple[list[Any], list[int], list[str], list[bytes]]]) -> int:
        if self._conn is None or self._conn.is_closed():  # lost in an outage: reconnect first
            self._conn = await self._connect()
        ids = [i for r in rows for i in r[0]]
        versions = [v for r in rows for v in r[1]]
        topics = [t for r in rows for t in r[2]]
        states = [s for r in rows for s in r[3]]
        try:
            return int(await self._conn.fetchval(self._append_sql, ids, versions, topics, states))
        except asyncpg.UniqueViolationError as error:
            raise ConcurrencyConflict(str(error)) from error

    async def _reconnect(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        with contextlib.suppress(Exception):
            self._conn = await self._connect()

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._url,
            server_settings={"search_path": self._schema, "application_name": "warest-group-commit"},
        )


def _settle(future: asyncio.Future[int], result: int = 0, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
