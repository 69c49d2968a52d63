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

Projections are total: an event a projection cannot apply (its data or the projection's code
raises: any Python exception, a PostgreSQL data or integrity error) is *parked*. The failed
batch is rolled back and applied again in halves, each in a savepoint, down to the events
that fail alone; those are recorded in ``projection_parked`` and the position moves past
them in the same transaction. ``retry_parked`` applies them again after a fix. Errors of
the database itself (connection, resources, a missing table) are not the event's: the
batch is retried with a back-off, as before, and shown in ``projection_tracking.error``.
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
from eventsourcing.utils import get_topic
from psycopg import sql

from warest.domain.text import safe
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
    revision: int


class _Stopped(Exception):
    """A pipelined write failed: its transaction was rolled back."""


class _Carry(NamedTuple):
    """A page's folded state and the position (and revision) of the read model after that
    page."""

    position: int
    state: Any
    revision: int = 0


class Parked(NamedTuple):
    """An event a projection could not apply (a row of ``projection_parked``)."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    error: str


class Retried(NamedTuple):
    """What ``retry_parked`` did: events applied (and no longer parked), events still failing."""

    applied: int
    failed: int


class _Batch(NamedTuple):
    """A page read under the tracking row's lock: its events, those that could not be
    decoded, and the position the read model moves to."""

    start: int
    end: int
    revision: int
    page: Page
    broken: list[Parked]

    @property
    def consumed(self) -> int:
        return len(self.page) + len(self.broken) if (self.page or self.broken) else self.end - self.start


def event_fault(error: BaseException) -> bool:
    """Whether ``error`` is the event's (its data, or the projection's code for it): parked.
    Errors of the database (connection, resources, locks, a missing table) are not: the
    batch is retried."""
    if isinstance(error, psycopg.Error):
        return isinstance(error, psycopg.DataError | psycopg.IntegrityError)
    return isinstance(error, Exception)


def describe(error: BaseException) -> str:
    return safe(f"{type(error).__name__}: {error}")[:2000]


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


SHADOW_SUFFIX = "__rebuild_"


def shadow_schema(schema: str, name: str) -> str:
    """The schema a rebuild of projection ``name`` builds its tables in."""
    return f"{schema}{SHADOW_SUFFIX}{name}"[:63]


class RebuildRunning(RuntimeError):
    """Another rebuild of the same read model holds its shadow schema."""


_INDEXES = (
    "SELECT (i.indisunique,"
    " regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', ''))::text,"
    " x.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %s AND t.relname = %s"
)
"""A table's indexes: their shape (unique, definition without name and table) and name."""


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
        shadow: str | None = None,
    ) -> None:
        """``announce``: a channel on which every committed batch sends ``name:position``
        (in its transaction), for processes that read this read model (``RemoteReadModels``).

        ``min_interval_s``: under load (``BUSY_EVENTS_PER_S`` or more over the last second),
        a batch starts at least this long after the previous one ended, so the runner takes a
        steady stream of events in fewer, larger transactions (each costs a tracking-row
        lock, a notification read, a commit and a WAL flush whatever its size); the read
        model then lags by at most about this interval. Below that load every event is
        taken at once.

        ``shadow``: a schema searched before ``schema``: the runner of a rebuild writes the
        tables, tracking row and parked events it finds there (``rebuild``)."""
        self.store = store
        self.projection = projection
        self.name = projection.name
        self.database_url = database_url
        self._schema = schema
        self._shadow = shadow
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
            "SELECT position, (SELECT max(notification_id) FROM {}), revision FROM projection_tracking"
            " WHERE name = %s FOR UPDATE"
        ).format(events)
        self._parked_events = sql.SQL(
            "SELECT p.position, e.originator_id::text, e.originator_version, e.topic, e.state"
            " FROM projection_parked p LEFT JOIN {} e ON e.notification_id = p.position"
            " WHERE p.name = %s ORDER BY p.position"
        ).format(events)
        self.parked = 0
        """How many events of this projection are parked (as of this runner's last look)."""
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

    def _connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A connection whose search path is the schema (the shadow schema first, if any)."""
        conn = psycopg_connect(self.database_url, self._schema, autocommit=True)
        if self._shadow is not None:
            conn.execute(
                sql.SQL("SET search_path TO {}, {}").format(
                    sql.Identifier(self._shadow), sql.Identifier(self._schema)
                )
            )
        conn.autocommit = autocommit
        return conn

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO projection_tracking (name, position) VALUES (%s, 0)"
                    " ON CONFLICT (name) DO NOTHING",
                    (self.name,),
                )
                self._count_parked(cur)
        return self._conn

    def _count_parked(self, cur: psycopg.Cursor[Any]) -> None:
        row = cur.execute("SELECT count(*) FROM projection_parked WHERE name = %s", (self.name,)).fetchone()
        self.parked = int(row[0]) if row else 0

    def process_batch(self) -> int:
        """Processes at most one page; returns the number of notifications consumed.

        An event the projection cannot apply does not stop it: the batch is applied again
        without it, and it is parked (see ``_isolate``)."""
        conn = self._connection()
        carry, self._carry = self._carry, None
        batch: _Batch | None = None
        try:
            with conn.transaction(), conn.cursor() as cur:
                batch = self._begin(cur)
                if batch is None:
                    self._carry = carry  # nothing changed: the state still holds for the next page
                    return 0
                # The read model is a function of the log up to its position: the rows
                # the page before left at ``start`` are still what the tables hold (unless
                # a retry of parked events changed them: the revision moved).
                held = carry is not None and (carry.position, carry.revision) == (batch.start, batch.revision)
                folded, news = self._apply(cur, batch.page, carry.state if held and carry else None)
                self._park(cur, batch.broken)
                self._track(cur, batch.end, news)
        except Exception as error:
            if batch is None or not event_fault(error):
                raise
            log.warning(
                "projection %s: a batch of %d events failed (%s); applying it again without the events"
                " that fail",
                self.name,
                batch.consumed,
                describe(error),
            )
            return self._isolate(batch)
        if folded is not None:
            self._carry = _Carry(batch.end, folded, batch.revision)
        self._set_position(batch.end, news)
        return batch.consumed

    def _begin(self, cur: psycopg.Cursor[Any]) -> _Batch | None:
        """Locks the tracking row and reads the next page (None: the log holds nothing new)."""
        row = cur.execute(self._lock_and_end, (self.name,)).fetchone()
        start = int(row[0]) if row else 0
        upper = int(row[1]) if row and row[1] is not None else 0
        revision = int(row[2]) if row else 0
        self._more = False
        if upper <= start:
            self._set_position(start)
            return None
        page, broken = self._read(cur.connection, start, upper)
        read = len(page) + len(broken)
        full_page = read >= self._batch_size
        self._more = full_page
        end = max(page[-1][1] if page else 0, broken[-1].position if broken else 0) if full_page else upper
        return _Batch(start, end, revision, page, broken)

    def _apply(self, cur: psycopg.Cursor[Any], page: Page, previous: Any) -> tuple[Any, bool]:
        """Applies ``page``: (the folded state or None, whether it had news for followers)."""
        fold = getattr(self.projection, "fold", None)
        if fold is not None:
            folded = fold(page, cur, previous)
            folded.write(cur)()
            return folded, folded.news()
        for event, position in page:
            self.projection.process(event, cur, position)
        return None, True

    def _isolate(self, batch: _Batch) -> int:
        """Applies a batch that failed, in a new transaction: in halves, each in a savepoint,
        down to the events that fail alone, which are parked. Nothing is carried to the next
        page. Returns 0 if another runner moved the read model meanwhile."""
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(self._lock_and_end, (self.name,)).fetchone()
            if row is None or int(row[0]) != batch.start:
                return 0
            parked = list(batch.broken)
            news = self._bisect(cur, batch.page, parked)
            self._park(cur, parked)
            self._track(cur, batch.end, news)
        self._set_position(batch.end, news)
        return batch.consumed

    def _bisect(self, cur: psycopg.Cursor[Any], page: Page, parked: list[Parked]) -> bool:
        """Applies ``page`` in log order, parking (into ``parked``) the events that fail alone."""
        if not page:
            return False
        try:
            with cur.connection.transaction():
                return self._apply(cur, page, None)[1]
        except Exception as error:
            if not event_fault(error):
                raise
            if len(page) == 1:
                event, position = page[0]
                parked.append(
                    Parked(position, str(event.originator_id), event.originator_version,
                           get_topic(type(event)), describe(error))
                )  # fmt: skip
                return False
            half = len(page) // 2
            first = self._bisect(cur, page[:half], parked)
            return self._bisect(cur, page[half:], parked) or first

    def _park(self, cur: psycopg.Cursor[Any], parked: list[Parked]) -> None:
        """Records ``parked`` in the batch's transaction (the position moves past them)."""
        if not parked:
            return
        cur.executemany(
            "INSERT INTO projection_parked (name, position, originator_id, originator_version, topic, error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name, position) DO UPDATE SET"
            " error = EXCLUDED.error, attempts = projection_parked.attempts + 1, retried_at = now()",
            [(self.name, *p) for p in parked],
        )
        for p in parked:
            log.error(
                "projection %s: parked the event at position %d (%s %s v%d): %s",
                self.name,
                p.position,
                p.topic,
                p.originator_id,
                p.originator_version,
                p.error,
            )
        self._count_parked(cur)

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

    def _read(self, conn: psycopg.Connection, start: int, upper: int) -> tuple[Page, list[Parked]]:
        """The projection's events in (start, upper], at most one page, decoded, with positions,
        and those that cannot be decoded (to be parked).

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
        try:
            return [(decode(cast(StoredEvent, _Stored(r[1], r[2], r[3], r[4]))), r[0]) for r in rows], []
        except Exception:  # noqa: S110 (found again, one by one, below)
            pass
        page: Page = []
        broken: list[Parked] = []
        for r in rows:
            try:
                page.append((decode(cast(StoredEvent, _Stored(r[1], r[2], r[3], r[4]))), r[0]))
            except Exception as error:
                broken.append(Parked(r[0], r[1], r[2], r[3], describe(error)))
        return page, broken

    def catch_up(self, progress: Progress | None = None) -> int:
        """Processes until the read model has reached the end of the log."""
        total = 0
        self._connection()  # the tracking row exists: the pipelined catch-up locks it
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
            self._carry = (
                _Carry(carry.position, idle(carry.state), carry.revision) if idle and carry else None
            )

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

        Stops at the end of the log, or when the position or revision moved (another
        runner, a retry of parked events), or when a page cannot be read, folded or written
        (nothing of it is committed): ``catch_up`` then goes on page by page from the
        committed position, where an event that cannot be applied is parked.
        """
        total = 0
        with (
            self._connect(autocommit=True) as reader,
            self._connect(autocommit=True) as writer,
            reader.cursor() as lookup,
            writer.cursor() as cur,
        ):
            row = cur.execute(
                "SELECT position, revision FROM projection_tracking WHERE name = %s", (self.name,)
            ).fetchone()
            start, revision = (int(row[0]), int(row[1])) if row else (0, 0)
            previous: Any = None
            in_flight: _InFlight | None = None
            try:
                while (upper := self.store.max_position()) > start:
                    end, events, folded = self._next_page(reader, lookup, start, upper, previous)
                    if in_flight is not None:
                        flight, in_flight = in_flight, None
                        total += self._land(writer, flight, progress)
                    cur.execute("BEGIN")
                    row = cur.execute(
                        "SELECT position, revision FROM projection_tracking WHERE name = %s FOR UPDATE",
                        (self.name,),
                    ).fetchone()
                    if (row and (int(row[0]), int(row[1]))) != (start, revision):
                        cur.execute("ROLLBACK")
                        break
                    statements = self._stage(cur, folded)
                    pipeline = ExitStack()
                    pipeline.enter_context(writer.pipeline())
                    in_flight = _InFlight(pipeline, end, events, folded, revision)
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
                if in_flight is not None:  # a later page stopped: the one in flight still lands
                    with suppress(_Stopped):
                        total += self._land(writer, in_flight, progress)
        return total

    def _next_page(
        self, reader: psycopg.Connection, lookup: psycopg.Cursor[Any], start: int, upper: int, previous: Any
    ) -> tuple[int, int, Any]:
        """(end, events, folded state) of the page after ``start``; ``_Stopped`` when it cannot
        be read or folded: page by page applies what it can and parks the rest."""
        try:
            page, broken = self._read(reader, start, upper)
            if broken:
                raise _Stopped
            end = page[-1][1] if len(page) >= self._batch_size else upper
            return end, len(page) if page else end - start, self.projection.fold(page, lookup, previous)  # type: ignore[attr-defined]
        except _Stopped:
            raise
        except Exception as error:
            log.info(
                "projection %s: a page failed to fold, going on page by page: %s", self.name, describe(error)
            )
            raise _Stopped from error

    def _stage(self, cur: psycopg.Cursor[Any], folded: Any) -> Callable[[], None]:
        """Stages the page's rows (in the page's transaction); its statements, to run in the
        pipeline. ``_Stopped`` (rolled back) when they cannot be staged."""
        try:
            statements: Callable[[], None] = folded.write(cur, deferred=True)
        except Exception as error:
            cur.execute("ROLLBACK")
            log.info(
                "projection %s: a page failed to stage, going on page by page: %s", self.name, describe(error)
            )
            raise _Stopped from error
        return statements

    def _land(self, writer: psycopg.Connection, flight: _InFlight, progress: Progress | None) -> int:
        """Waits for a pipelined page to commit; ``_Stopped`` if it failed (and was rolled back)."""
        try:
            flight.pipeline.close()
        except psycopg.Error as error:
            log.info("projection %s: pipelined write failed, going on page by page: %s", self.name, error)
            if writer.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                writer.execute("ROLLBACK")
            raise _Stopped from error
        self._carry = _Carry(flight.end, flight.folded, flight.revision)
        self._set_position(flight.end, flight.folded.news())
        if progress:
            progress(flight.end, self.store.max_position())
        return flight.events

    def rebuild(self, progress: Progress | None = None) -> int:
        """Builds the read model again from the whole log, and swaps it in.

        The tables are built under a shadow schema (``shadow_schema``): each is created
        ``LIKE`` the live one ``INCLUDING ALL``, with a tracking row and parked events of its
        own, and a runner whose search path puts the shadow schema first catches up into
        them (the pipelined path when far behind) while the live tables keep answering and
        following. Then, under the live tracking row's lock (the live runner waits), it
        takes the events committed meanwhile and, in the same transaction, drops each live
        table, moves its shadow in (indexes renamed as they were), and moves the tracking
        position, the revision and the parked events: readers see the old table or the
        new one, always complete. A projection without tables (the outbox) is replayed in
        place. Returns the number of events processed."""
        if not self.projection.tables:
            return self._replay_in_place(progress)
        shadow = shadow_schema(self._schema, self.name)
        with psycopg_connect(self.database_url, self._schema, autocommit=True) as conn:
            locked = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (shadow,)).fetchone()
            if not (locked and locked[0]):
                raise RebuildRunning(f"a rebuild of {self.name} is already running")
            try:
                self._create_shadow(conn, shadow)
                builder = ProjectionRunner(
                    self.store, self.projection, self.database_url, self._schema,
                    batch_size=self._batch_size, shadow=shadow,
                )  # fmt: skip
                try:
                    total = builder.catch_up(progress)
                    for table in self.projection.tables:
                        conn.execute(
                            sql.SQL("ANALYZE {}.{}").format(sql.Identifier(shadow), sql.Identifier(table))
                        )
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute(
                            "SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE",
                            (self.name,),
                        )
                        total += builder.catch_up(progress)  # what was committed meanwhile
                        position = builder.position
                        self._swap(cur, shadow, position)
                finally:
                    builder.stop()
            finally:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow)))
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (shadow,))
        self._carry = None
        self._set_position(position)
        log.info(
            "projection %s: rebuilt from %d events and swapped in at position %d", self.name, total, position
        )
        return total

    def _replay_in_place(self, progress: Progress | None) -> int:
        """Moves the position back to the start and catches up (a projection without tables)."""
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE", (self.name,))
            cur.execute(
                "DELETE FROM projection_parked WHERE name = %s", (self.name,)
            )  # parked again if still bad
            self._track(cur, 0)
        self._set_position(0)
        return self.catch_up(progress)

    def _create_shadow(self, conn: psycopg.Connection, shadow: str) -> None:
        """The shadow schema, empty: the read model's tables, tracking and parked events
        (one left by a rebuild that stopped is dropped first)."""
        live, into = sql.Identifier(self._schema), sql.Identifier(shadow)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(into))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(into))
        for table in (*self.projection.tables, "projection_tracking", "projection_parked"):
            name = sql.Identifier(table)
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} (LIKE {}.{} INCLUDING ALL)").format(into, name, live, name)
            )
        conn.execute(
            sql.SQL("INSERT INTO {}.projection_tracking (name, position) VALUES (%s, 0)").format(into),
            (self.name,),
        )

    def _swap(self, cur: psycopg.Cursor[Any], shadow: str, position: int) -> None:
        """In the caller's transaction: each live table replaced by its shadow (its indexes
        renamed as the live ones were), the parked events and the tracking row moved."""
        live, into = sql.Identifier(self._schema), sql.Identifier(shadow)
        for table in self.projection.tables:
            names = dict(cur.execute(_INDEXES, (self._schema, table)).fetchall())
            cur.execute(sql.SQL("DROP TABLE {}.{}").format(live, sql.Identifier(table)))
            cur.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(into, sql.Identifier(table), live))
            moved = dict(cur.execute(_INDEXES, (self._schema, table)).fetchall())
            renames = [
                (moved[shape], names[shape])
                for shape in moved
                if shape in names and moved[shape] != names[shape]
            ]
            for step, (old, _new) in enumerate(renames):  # two steps: a new name may be an old one
                cur.execute(sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
                    live, sql.Identifier(old), sql.Identifier(f"{table}__swap{step}")))  # fmt: skip
            for step, (_old, new) in enumerate(renames):
                cur.execute(sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
                    live, sql.Identifier(f"{table}__swap{step}"), sql.Identifier(new)))  # fmt: skip
        cur.execute("DELETE FROM projection_parked WHERE name = %s", (self.name,))
        cur.execute(
            sql.SQL(
                "INSERT INTO projection_parked SELECT * FROM {}.projection_parked WHERE name = %s"
            ).format(into),
            (self.name,),
        )
        cur.execute("UPDATE projection_tracking SET revision = revision + 1 WHERE name = %s", (self.name,))
        self._track(cur, position)
        self._count_parked(cur)

    def retry_parked(self) -> Retried:
        """Applies this projection's parked events again, in log order, at the read model's
        current state (each in a savepoint, under the tracking row's lock): those that apply
        are no longer parked, the others keep their row with the new error. The revision
        moves, so no runner writes rows it carried from before the retry. Safe to call from
        any thread while the runner runs."""
        applied = failed = 0
        decode = self.store.mapper.to_domain_event
        # A connection of its own: the runner's thread may be in a batch on its connection.
        with (
            self._connect() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (%s, 0)"
                " ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )
            cur.execute("SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE", (self.name,))
            with conn.cursor(binary=True) as binary:
                rows = binary.execute(self._parked_events, (self.name,)).fetchall()
            for position, originator_id, version, topic, state in rows:
                try:
                    with conn.transaction():
                        if originator_id is None:
                            raise LookupError(f"position {position} is not in the event log")
                        event = decode(cast(StoredEvent, _Stored(originator_id, version, topic, state)))
                        self._apply(cur, [(event, position)], None)
                        cur.execute(
                            "DELETE FROM projection_parked WHERE name = %s AND position = %s",
                            (self.name, position),
                        )
                    applied += 1
                except Exception as error:
                    if not event_fault(error):
                        raise
                    failed += 1
                    cur.execute(
                        "UPDATE projection_parked SET error = %s, attempts = attempts + 1, retried_at = now()"
                        " WHERE name = %s AND position = %s",
                        (describe(error), self.name, position),
                    )
            cur.execute(
                "UPDATE projection_tracking SET revision = revision + 1 WHERE name = %s", (self.name,)
            )
            self._count_parked(cur)
        log.info("projection %s: retried %d parked events: %d applied, %d still failing",
                 self.name, len(rows), applied, failed)  # fmt: skip
        return Retried(applied, failed)

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
            with self._connect(autocommit=True) as conn:
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
