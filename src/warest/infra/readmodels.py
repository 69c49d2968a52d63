"""Where the read models are, and read-your-writes waiting on them.

Two ways to have read models, one waiting logic:

- ``LocalReadModels``: the projection runners run in this process (threads), as in the
  projector process, a CLI command or an in-process test app;
- ``RemoteReadModels``: a projector process runs them (``warest projector``, started by each
  server worker by default) and announces every batch it commits on a PostgreSQL channel;
  this process follows those announcements.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from warest.infra.db.connect import psycopg_connect
from warest.infra.projection_runner import ProjectionRunner, read_announcement

log = logging.getLogger("warest.projections")


class ReadModels:
    """The positions of a set of read models, waiters on them and followers of each."""

    def __init__(self, names: Iterable[str], max_position: Callable[[], int]) -> None:
        self._positions = dict.fromkeys(names, 0)
        self._max_position = max_position
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._followers: dict[str, list[Callable[[int], None]]] = {}
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None

    def follow(self, name: str, callback: Callable[[int], None]) -> None:
        """Calls ``callback(position)`` on the event loop each time read model ``name`` moves
        with news (``Folded.news``: for the webhook outbox, new deliveries)."""
        if name not in self._positions:
            raise KeyError(name)
        self._followers.setdefault(name, []).append(callback)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)

    def _listen_in(self, name: str, listen: Callable[[], None]) -> None:
        """Runs ``listen`` (a loop until ``_stopping``) in a thread that ``stop`` ends."""
        self._listener = threading.Thread(target=listen, name=name, daemon=True)
        self._listener.start()

    def nudge(self, position: int) -> None:
        """Something was committed in this process (the local runners need not wait for a poll)."""

    def healthy(self) -> bool:
        raise NotImplementedError

    def parked(self) -> dict[str, int]:
        """How many events each read model parked (only those with some): events it could
        not apply and moved past (``ProjectionRunner``). Degraded, not unhealthy: the read
        model follows the log, and waits for positions past a parked event end."""
        raise NotImplementedError

    def advanced(self, name: str, position: int, news: bool = True) -> None:
        """Read model ``name`` is at ``position`` now (from any thread). Without ``news``
        (a batch that changed nothing its followers look for) only waits are released."""
        if self._positions.get(name) == position:
            return
        self._positions[name] = position
        loop = self._loop
        if loop is None:
            return
        if self._waiters:
            loop.call_soon_threadsafe(self._release)
        if news:
            for follower in self._followers.get(name, ()):
                loop.call_soon_threadsafe(follower, position)

    @property
    def position(self) -> int:
        """The position every read model has reached."""
        return min(self._positions.values(), default=0)

    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        if self.position >= position:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (position, next(self._counter), future))
        self._release()  # a runner may have moved between the check and the push
        self.nudge(position)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self.position >= position
        return True

    async def wait_latest(self, timeout: float = 5.0) -> bool:
        """Waits until the read models include everything committed so far (by anyone)."""
        latest = await asyncio.to_thread(self._max_position)
        return await self.wait(latest, timeout)

    def _release(self) -> None:
        reached = self.position
        while self._waiters and self._waiters[0][0] <= reached:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)


class LocalReadModels(ReadModels):
    """Runners in this process: caught up on start, then following the log in threads."""

    def __init__(self, runners: Iterable[ProjectionRunner], max_position: Callable[[], int]) -> None:
        self.runners = {runner.name: runner for runner in runners}
        super().__init__(self.runners, max_position)
        for name, runner in self.runners.items():
            runner.on_advance = lambda position, news, name=name: self.advanced(name, position, news)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().start(loop)
        for runner in self.runners.values():
            runner.catch_up()
            runner.start()
        if self.runners:
            self._listen_in("readmodels-listen", self._listen)

    def stop(self) -> None:
        super().stop()
        for runner in self.runners.values():
            runner.stop()

    def healthy(self) -> bool:
        return all(runner.error is None for runner in self.runners.values())

    def parked(self) -> dict[str, int]:
        return {name: runner.parked for name, runner in self.runners.items() if runner.parked}

    def _listen(self) -> None:
        """One LISTEN connection wakes every runner when any process commits events."""
        runner = next(iter(self.runners.values()))
        while not self._stopping.is_set():
            try:
                with psycopg.connect(runner.database_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(runner.store.channel)))
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.nudge(0)
            except psycopg.Error:
                self._stopping.wait(1.0)

    def nudge(self, position: int) -> None:
        for runner in self.runners.values():
            runner.nudge(position)


class RemoteReadModels(ReadModels):
    """Read models a projector process keeps: this process follows what it announces.

    The projector sends ``name:position`` on ``channel`` in the transaction of every batch
    (``name:position:quiet`` when the batch had no news for followers), so an announcement
    arrives when the rows are visible. The tracking table is read again
    on every (re)connection and once a second, so nothing is missed while disconnected.
    ``healthy`` says whether some process holds the projector's lease (``lock_key``) and
    no read model shows a failure in the tracking table (seen within ``refresh_s``);
    ``parked`` counts the parked events, read at the same time.
    """

    def __init__(
        self,
        names: Iterable[str],
        max_position: Callable[[], int],
        database_url: str,
        schema: str,
        channel: str,
        lock_key: int,
        *,
        refresh_s: float = 1.0,
    ) -> None:
        super().__init__(names, max_position)
        self._url = database_url
        self._schema = schema
        self._channel = channel
        self._lock_key = lock_key
        self._refresh_s = refresh_s
        self._projector_seen = False
        self.failing: dict[str, str] = {}
        """Read models whose last batch failed, with the error (from the tracking table)."""
        self._parked: dict[str, int] = {}

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().start(loop)
        with psycopg_connect(self._url, self._schema, autocommit=True) as conn:
            self._refresh(conn)
        self._listen_in("readmodels-follow", self._listen)

    def healthy(self) -> bool:
        return self._projector_seen and not self.failing

    def parked(self) -> dict[str, int]:
        return dict(self._parked)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg_connect(self._url, self._schema, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._refresh(conn)
                    refreshed = time.monotonic()
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=self._refresh_s / 2):
                            announced = read_announcement(notice.payload)
                            if announced is not None and announced[0] in self._positions:
                                self.advanced(*announced)
                        if time.monotonic() - refreshed >= self._refresh_s:
                            self._refresh(conn)
                            refreshed = time.monotonic()
            except psycopg.Error as error:
                self._projector_seen = False
                log.warning("read models: lost the projector's channel (%s); reconnecting", error)
                self._stopping.wait(1.0)

    def _refresh(self, conn: psycopg.Connection) -> None:
        rows = conn.execute(
            "SELECT name, position, error FROM projection_tracking WHERE name = ANY(%s)",
            (list(self._positions),),
        ).fetchall()
        for name, position, _ in rows:
            self.advanced(name, int(position))
        self.failing = {name: error for name, _, error in rows if error is not None}
        parked = conn.execute(
            "SELECT name, count(*) FROM projection_parked WHERE name = ANY(%s) GROUP BY name",
            (list(self._positions),),
        ).fetchall()
        self._parked = {name: int(count) for name, count in parked}
        held = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            (self._lock_key >> 32, self._lock_key & 0xFFFF_FFFF),
        ).fetchone()
        self._projector_seen = bool(held and held[0])
