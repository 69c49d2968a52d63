"""A lease on work that one process of a deployment does at a time (the webhook dispatcher).

The lease is a PostgreSQL session-level advisory lock held on its own connection. The
holder checks that connection every few seconds: if it was lost (the server restarted, a
network cut, ``pg_terminate_backend``), PostgreSQL released the lock and another process may
take it, so the holder stops its work at once and queues for the lease again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from warest.infra.db.connect import AdvisoryLock

log = logging.getLogger("warest.lease")


class Lease:
    def __init__(
        self,
        lock: AdvisoryLock,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
        *,
        name: str,
        retry_s: float = 5.0,
        check_s: float = 5.0,
    ) -> None:
        self._lock = lock
        self._start = start
        self._stop = stop
        self._name = name
        self._retry_s = retry_s
        self._check_s = check_s
        self.held = False

    async def run(self) -> None:
        """Until cancelled: take the lease, do the work while the lease holds, again."""
        while True:
            while not await asyncio.to_thread(self._lock.try_acquire):  # noqa: ASYNC110 (another process)
                await asyncio.sleep(self._retry_s)
            try:
                await self._start()
                self.held = True
                log.info("%s: lease taken", self._name)
                while await asyncio.to_thread(self._lock.alive):  # noqa: ASYNC110 (polling the connection)
                    await asyncio.sleep(self._check_s)
                log.warning(
                    "%s: lease lost (its connection is gone); stopping, then queueing again", self._name
                )
            finally:
                self.held = False
                await self._stop()
                await asyncio.to_thread(self._lock.release)
