"""The dispatcher's lease: one holder per key; a holder whose lock connection is lost stops
its work at once and queues again; cancelling gives the lease up."""

from __future__ import annotations

import asyncio
import secrets

import psycopg

from warest.infra.db.connect import AdvisoryLock
from warest.infra.db.lease import Lease


async def until(condition: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_a_lost_lease_stops_the_work_and_is_taken_again(database_url: str) -> None:
    key = secrets.randbits(62)
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")

    async def stop() -> None:
        calls.append("stop")

    lock = AdvisoryLock(database_url, key)
    lease = Lease(lock, start, stop, name="test", retry_s=0.05, check_s=0.05)
    task = asyncio.create_task(lease.run())
    await until(lambda: lease.held)
    rival = AdvisoryLock(database_url, key)
    assert not await asyncio.to_thread(rival.try_acquire)  # one holder at a time

    pid = lock.backend_pid
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await until(lambda: calls == ["start", "stop", "start"])  # stopped, then took the lease again
    assert lease.held and lock.backend_pid != pid

    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert calls == ["start", "stop", "start", "stop"] and not lease.held
    assert await asyncio.to_thread(rival.try_acquire)  # given up on cancel
    rival.release()
