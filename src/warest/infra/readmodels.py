"""All projection runners of this process, and read-your-writes waiting across them."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from warest.infra.projection_runner import ProjectionRunner


class ReadModels:
    def __init__(self, runners: Iterable[ProjectionRunner], max_position: Callable[[], int]) -> None:
        self.runners = {runner.name: runner for runner in runners}
        self._max_position = max_position
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._followers: dict[str, list[Callable[[int], None]]] = {}
        for runner in self.runners.values():
            runner.on_advance = self._advanced

    def follow(self, name: str, callback: Callable[[int], None]) -> None:
        """Calls ``callback(position)`` on the event loop each time runner ``name`` advances."""
        self._followers.setdefault(name, []).append(callback)
        runner = self.runners[name]

        def advanced(position: int) -> None:
            self._advanced(position)
            if self._loop is not None:
                for follower in self._followers[name]:
                    self._loop.call_soon_threadsafe(follower, position)

        runner.on_advance = advanced

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        for runner in self.runners.values():
            runner.catch_up()
            runner.start()
        if self.runners:
            self._listener = threading.Thread(target=self._listen, name="readmodels-listen", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        for runner in self.runners.values():
            runner.stop()

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

    @property
    def position(self) -> int:
        """The position every read model of this process has reached."""
        return min((r.position for r in self.runners.values()), default=0)

    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        if self.position >= position:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (position, next(self._counter), future))
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

    def _advanced(self, _position: int) -> None:
        """Called from a runner thread after each batch."""
        if self._loop is not None and self._waiters:
            self._loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        reached = self.position
        while self._waiters and self._waiters[0][0] <= reached:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
