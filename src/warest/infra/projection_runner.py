"""A batched projection runner: many events per transaction, tracking in the same one.

The stock eventsourcing runner commits once per event (~1,000 events/s). This one reads
pages of notifications, lets the projection write its rows through one cursor and moves
the projection's position in ``projection_tracking`` in the same transaction, so a
crash replays nothing twice and skips nothing. The tracking row is locked ``FOR UPDATE``
by every batch, so a rebuild, a second process or a CLI run never double-applies events.

A projection with a ``fold(page, cur, previous)`` method gets each page of decoded events
at once: it applies them to rows in memory and its ``write(cur)`` stores the result with a
few set-based statements (see ``projections/_page.py``). ``previous`` is what ``fold``
returned for the page before, when the read model is still where that page left it: the
rows it holds need not be read again. ``process(event, cur, position)`` is called per event
otherwise.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, NamedTuple, Protocol, cast

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from warest.infra.db.connect import psycopg_connect
from warest.infra.eventstore.store import EventStoreApp

log = logging.getLogger("warest.projections")

Progress = Callable[[int, int], None]
Advance = Callable[[int, bool], None]
"""``on_advance(position, news)``: ``news`` false when the batch had nothing for followers
(``Folded.news``); waits for the position are released either way."""
Page = list[tuple[Any, int]]
"""Decoded events with their positions (notification ids), in log order."""


class _Stored(NamedTuple):
    """What the mapper reads of a ``StoredEvent`` (a tuple is ~4x cheaper to build than the
    frozen dataclass, and a rebuild decodes every event of the log)."""

    originator_id: str
    originator_version: int
    topic: str
    state: bytes


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while catching up (nested and thread-safe).

    A page is tens of thousands of new container objects (events, rows) that survive
    long enough to be promoted, which triggers full collections over and over: with the
    collector on, a rebuild spends about a third of its Python time in it. Reference
    counting still frees everything a page leaves behind; cycles wait for the end.
    """
    global _gc_pauses, _gc_resume  # noqa: PLW0603
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()


class _InFlight(NamedTuple):
    """A page whose statements were sent in a pipeline, with its ``COMMIT``."""

    pipeline: ExitStack  # leaving it syncs the pipeline: waits for the results
    end: int
    events: int
    folded: Any


class _Stopped(Exception):
    """A pipelined write failed: its transaction was rolled back."""


class _Carry(NamedTuple):
    """A page's folded state and the position of the read model after that page."""

    position: int
    state: Any


BUSY_EVENTS_PER_S = 500
QUIET = "quiet"
"""The announcement's suffix for a batch without news for followers."""


def announcement(name: str, position: int, news: bool) -> str:
    """What a batch sends on the announce channel: ``name:position``, or
    ``name:position:quiet`` when it had no news for followers."""
    return f"{name}:{position}" if news else f"{name}:{position}:{QUIET}"


def read_announcement(payload: str) -> tuple[str, int, bool] | None:
    """(name, position, news) of an announcement; None for anything else."""
    name, _, rest = payload.partition(":")
    position, _, flag = rest.partition(":")
    return (name, int(position), flag != QUIET) if position.isdigit() else None


class _Load:
    """Events a following runner took over the last full second, and when its last batch ended."""

    def __init__(self) -> None:
        self.ended = 0.0
        self.busy = False
        self._since = time.monotonic()
        self._events = 0

    def count(self, events: int) -> None:
        now = time.monotonic()
        if events:
            self.ended = now
            self._events += events
        if now - self._since >= 1.0:
            self.busy = self._events / (now - self._since) >= BUSY_EVENTS_PER_S
            self._since, self._events = now, 0


class Projection(Protocol):
    """A read model: its name, its tables and how one event changes them."""

    name: str
    tables: tuple[str, ...]
    topics: tuple[str, ...]

    def process(self, event: Any, cur: psycopg.Cursor[Any], position: int) -> None: ...


class ProjectionRunner:
    def __init__(
        self,
        store: EventStoreApp,
        projection: Projection,
        database_url: str,
        schema: str,
        *,
        batch_size: int = 20_000,
        poll_interval_s: float = 1.0,
        announce: str | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        """``announce``: a channel on which every committed batch sends ``name:position``
        (in its transaction), for processes that read this read model (``RemoteReadModels``).

        ``min_interval_s``: under load (``BUSY_EVENTS_PER_S`` or more over the last second),
        a batch starts at least this long after the previous one ended, so the runner takes a
        steady stream of events in fewer, larger transactions (each costs a tracking-row
        lock, a notification read, a commit and a WAL flush whatever its size); the read
        model then lags by at most about this interval. Below that load every event is
        taken at once."""
        self.store = store
        self.projection = projection
        self.name = projection.name
        self.database_url = database_url
        self._schema = schema
        self._batch_size = batch_size
        self._poll = poll_interval_s
        self._conn: psycopg.Connection | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._advanced = threading.Condition()
        self._position = 0
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.on_advance: Advance | None = None
        self._carry: _Carry | None = None
        self._announce = announce
        self._min_interval_s = min_interval_s
        events = sql.SQL("{}.{}").format(
            sql.Identifier(store.recorder.datastore.schema),  # type: ignore[attr-defined]
            sql.Identifier(store.recorder.events_table_name),  # type: ignore[attr-defined]
        )
        select = sql.SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state FROM {}"
            " WHERE notification_id > %s AND notification_id <= %s{} ORDER BY notification_id LIMIT %s"
        )
        self._select_all = select.format(events, sql.SQL(""))
        self._select_with_topics = select.format(events, sql.SQL(" AND topic = ANY(%s)"))
        # The tracking row, locked, and the log's end (on this connection: the store's pool
        # would add a checkout and a round trip).
        self._lock_and_end = sql.SQL(
            "SELECT position, (SELECT max(notification_id) FROM {}) FROM projection_tracking"
            " WHERE name = %s FOR UPDATE"
        ).format(events)
        self._more = False  # the last batch took a full page: the log may hold more

    # -- position -------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._position

    def _set_position(self, position: int, news: bool = True) -> None:
        with self._advanced:
            if position != self._position:
                self._position = position
                self._advanced.notify_all()
        if self.on_advance is not None:
            self.on_advance(position, news)

    def wait(self, position: int, timeout: float = 5.0) -> bool:
        """Blocks until the read model has processed ``position`` (read-your-writes)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._advanced:
            while self._position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._advanced.wait(min(remaining, 0.05))
        return True

    def nudge(self, _position: int = 0) -> None:
        """Called after a local commit so the runner does not wait for a poll."""
        self._wake.set()

    # -- processing -----------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg_connect(self.database_url, self._schema)
            with self._conn.transaction():
                self._conn.execute(
                    "INSERT INTO projection_tracking (name, position) VALUES (%s, 0)"
                    " ON CONFLICT (name) DO NOTHING",
                    (self.name,),
                )
        return self._conn

    def process_batch(self) -> int:
        """Processes at most one page; returns the number of notifications consumed."""
        conn = self._connection()
        carry, self._carry = self._carry, None
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(self._lock_and_end, (self.name,)).fetchone()
            start = int(row[0]) if row else 0
            upper = int(row[1]) if row and row[1] is not None else 0
            self._more = False
            if upper <= start:
                self._carry = carry  # nothing changed: the state still holds for the next page
                self._set_position(start)
                return 0
            page = self._read(conn, start, upper)
            full_page = len(page) >= self._batch_size
            new_position = page[-1][1] if full_page else upper
            self._more = full_page
            fold = getattr(self.projection, "fold", None)
            if fold is not None:
                # The read model is a function of the log up to its position: the rows
                # the page before left at ``start`` are still what the tables hold.
                folded = fold(
                    page, cur, carry.state if carry is not None and carry.position == start else None
                )
                folded.write(cur)()
                news = folded.news()
            else:
                for event, position in page:
                    self.projection.process(event, cur, position)
                news = True
            self._track(cur, new_position, news)
        if fold is not None:
            self._carry = _Carry(new_position, folded)
        self._set_position(new_position, news)
        return len(page) if page else new_position - start

    def _track(self, cur: psycopg.Cursor[Any], position: int, news: bool = True) -> None:
        """Moves the tracking row (and announces it) in the caller's transaction: the payload
        is ``name:position``, or ``name:position:quiet`` when the batch had no ``news``."""
        cur.execute(
            "UPDATE projection_tracking SET position = %s, updated_at = now(), error = NULL,"
            " failed_at = NULL WHERE name = %s",
            (position, self.name),
        )
        if self._announce is not None:
            cur.execute("SELECT pg_notify(%s, %s)", (self._announce, announcement(self.name, position, news)))

    def _read(self, conn: psycopg.Connection, start: int, upper: int) -> Page:
        """The projection's events in (start, upper], at most one page, decoded, with positions.

        The same rows as ``recorder.select_notifications`` (topic filter in SQL), fetched in
        binary and without the ``Notification`` objects: a rebuild reads the whole log.
        """
        topics = list(self.projection.topics)
        with conn.cursor(binary=True) as cur:
            cur.execute(
                self._select_with_topics if topics else self._select_all,
                (start, upper, topics, self._batch_size) if topics else (start, upper, self._batch_size),
                prepare=True,
            )
            rows = cur.fetchall()
        decode = self.store.mapper.to_domain_event
        return [(decode(cast(StoredEvent, _Stored(r[1], r[2], r[3], r[4]))), r[0]) for r in rows]

    def catch_up(self, progress: Progress | None = None) -> int:
        """Processes until the read model has reached the end of the log."""
        total = 0
        try:
            if hasattr(self.projection, "fold") and self._backlog() > self._batch_size:
                with _gc_paused():
                    total += self._pipelined(progress)
            while True:
                done = self.process_batch()
                if done == 0:
                    return total
                total += done
                if progress:
                    progress(self._position, self.store.max_position())
        finally:
            # A page of rows is not kept while idle; a projection may keep a small part of
            # it (``idle``: e.g. the outbox's directory, which it would otherwise read again).
            idle = getattr(self.projection, "idle", None)
            carry = self._carry
            self._carry = _Carry(carry.position, idle(carry.state)) if idle and carry else None

    def follow(self) -> int:
        """What the log holds now, page by page while pages come full: the background loop's
        step. Unlike ``catch_up`` it does not end with a batch that finds nothing (a whole
        transaction per wake-up, for the outbox once per commit): a commit made meanwhile
        wakes the loop again."""
        total = self.process_batch()
        while self._more:
            total += self.process_batch()
        return total

    def _backlog(self) -> int:
        return self.store.max_position() - self._position

    def _pipelined(self, progress: Progress | None) -> int:
        """Catches up page by page, each page's statements running while the next is prepared.

        For a projection with ``fold``. Two connections of its own: one reads the events
        and the rows ``fold`` looks up, the other writes. A page is written in a
        transaction that locks the tracking row and checks that the read model is where
        the page starts, copies the page's rows into staging tables, then sends the
        statements, the new position and ``COMMIT`` in a pipeline and returns without
        waiting: the next page is read and folded meanwhile, and its write first waits for
        that commit. The page being written is ``previous`` for the fold of the next one:
        the rows it holds are taken from it, the others are read from the tables, which
        the page in flight does not change (and every page before it is committed).

        Stops at the end of the log, or when the position moved (another runner), or when
        a write failed (nothing of it is committed): ``catch_up`` then goes on page by page
        from the committed position, and meets a persistent error in context.
        """
        fold = self.projection.fold  # type: ignore[attr-defined]
        total = 0
        with (
            psycopg_connect(self.database_url, self._schema, autocommit=True) as reader,
            psycopg_connect(self.database_url, self._schema, autocommit=True) as writer,
            reader.cursor() as lookup,
            writer.cursor() as cur,
        ):
            row = cur.execute(
                "SELECT position FROM projection_tracking WHERE name = %s", (self.name,)
            ).fetchone()
            start = int(row[0]) if row else 0
            previous: Any = None
            in_flight: _InFlight | None = None
            try:
                while (upper := self.store.max_position()) > start:
                    page = self._read(reader, start, upper)
                    end = page[-1][1] if len(page) >= self._batch_size else upper
                    folded = fold(page, lookup, previous)
                    if in_flight is not None:
                        flight, in_flight = in_flight, None
                        total += self._land(writer, flight, progress)
                    cur.execute("BEGIN")
                    row = cur.execute(
                        "SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE", (self.name,)
                    ).fetchone()
                    if (int(row[0]) if row else None) != start:
                        cur.execute("ROLLBACK")
                        break
                    statements = folded.write(cur, deferred=True)
                    pipeline = ExitStack()
                    pipeline.enter_context(writer.pipeline())
                    in_flight = _InFlight(pipeline, end, len(page) if page else end - start, folded)
                    statements()
                    self._track(cur, end, folded.news())
                    cur.execute("COMMIT")
                    previous, start = folded, end
                if in_flight is not None:
                    flight, in_flight = in_flight, None
                    total += self._land(writer, flight, progress)
            except _Stopped:
                pass
            finally:
                if in_flight is not None:  # reading or folding failed: the error is theirs
                    with suppress(_Stopped):
                        self._land(writer, in_flight, progress)
        return total

    def _land(self, writer: psycopg.Connection, flight: _InFlight, progress: Progress | None) -> int:
        """Waits for a pipelined page to commit; ``_Stopped`` if it failed (and was rolled back)."""
        try:
            flight.pipeline.close()
        except psycopg.Error as error:
            log.info("projection %s: pipelined write failed, going on page by page: %s", self.name, error)
            if writer.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                writer.execute("ROLLBACK")
            raise _Stopped from error
        self._carry = _Carry(flight.end, flight.folded)
        self._set_position(flight.end, flight.folded.news())
        if progress:
            progress(flight.end, self.store.max_position())
        return flight.events

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empties the read model's tables and replays the whole log into them."""
        conn = self._connection()
        with conn.transaction():
            conn.execute("SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE", (self.name,))
            if self.projection.tables:
                conn.execute(
                    sql.SQL("TRUNCATE {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, self.projection.tables))
                    )
                )
            with conn.cursor() as cur:
                self._track(cur, 0)
        self._set_position(0)
        return self.catch_up(progress)

    # -- background -----------------------------------------------------------

    def start(self) -> None:
        self._connection()
        self._threads = [threading.Thread(target=self._run, name=f"projection-{self.name}", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _record_error(self, error: BaseException | None) -> None:
        """Shows (or clears) a failure in ``projection_tracking`` for other processes; on its
        own connection, since the failed batch's transaction was rolled back."""
        text = None if error is None else f"{type(error).__name__}: {error}"[:1000]
        try:
            with psycopg_connect(self.database_url, self._schema, autocommit=True) as conn:
                conn.execute(
                    "UPDATE projection_tracking SET error = %(error)s, failed_at ="
                    " CASE WHEN %(error)s::text IS NULL THEN NULL ELSE now() END WHERE name = %(name)s",
                    {"error": text, "name": self.name},
                )
        except psycopg.Error as failure:  # the database is away: whoever follows sees that anyway
            log.warning("projection %s: could not record its state: %s", self.name, failure)

    def _run(self) -> None:
        backoff = 0.1
        load = _Load()
        while not self._stop.is_set():
            spaced = load.busy and self._min_interval_s > 0
            if spaced:
                pause = load.ended + self._min_interval_s - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
            self._wake.clear()
            try:
                # Spaced: one batch per interval (catching up would chase the commits that
                # arrive meanwhile, in small batches).
                load.count(self.process_batch() if spaced else self.follow())
                backoff = 0.1
                if self.error is not None:
                    self.error = None
                    self._record_error(None)  # a batch clears it too, when there was one
            except Exception as error:  # keep following; the next batch retries
                log.exception("projection %s failed; retrying in %.1fs", self.name, backoff)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if self.error is None:
                    self._record_error(error)
                self.error = error
                # Out of reach: a local commit means the database is back, so retry at once.
                (self._wake if isinstance(error, psycopg.OperationalError) else self._stop).wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            self._wake.wait(self._poll)
