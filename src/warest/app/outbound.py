"""The outbound queue of one session: bounded, ordered, retried, paused while offline.

Messages enter it only after their ``Queued`` event is recorded, so the queue itself
holds nothing that a restart could lose: a new process rebuilds it from the pending
read model. With concurrency 1 (the default) messages leave strictly in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from warest.app.engine import EngineError, NotConnected, OutboundText, SendResult
from warest.domain.errors import DomainError

log = logging.getLogger("warest.outbound")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    delay_ms: int = 521
    factor: float = 2.0
    jitter: float = 0.2
    timeout_ms: int = 30000

    def delay_s(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based)."""
        base = self.delay_ms * self.factor ** (attempt - 1) / 1000
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))  # noqa: S311 (jitter, not crypto)


@dataclass
class Job:
    message_id: UUID
    text: OutboundText
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class QueueIsFull(DomainError):
    """The session's outbound queue is at its configured size."""


Sender = Callable[[OutboundText], Awaitable[SendResult]]
Outcome = tuple["Job", SendResult | None, EngineError | None, int]
Recorder = Callable[[Job, SendResult | None, EngineError | None, int], Awaitable[None]]


class OutboundQueue:
    def __init__(
        self,
        name: str,
        send: Sender,
        record: Recorder,
        policy: RetryPolicy,
        *,
        concurrency: int = 1,
        max_size: int = 0,
    ) -> None:
        self.name = name
        self._send = send
        self._record = record
        self._policy = policy
        self._max_size = max_size
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._members: set[UUID] = set()
        self._reserved = 0
        self._online = asyncio.Event()
        self._recording: set[asyncio.Task[None]] = set()
        self._workers = [
            asyncio.create_task(self._work(), name=f"outbound-{name}-{i}") for i in range(concurrency)
        ]
        self._closed = False

    def __len__(self) -> int:
        return len(self._members)

    def reserve(self, count: int) -> bool:
        """Claims room for ``count`` jobs before they are recorded (released by ``put`` or
        ``release``), so concurrent requests cannot overfill the queue."""
        if self._max_size and len(self._members) + self._reserved + count > self._max_size:
            return False
        self._reserved += count
        return True

    def release(self, count: int) -> None:
        self._reserved = max(0, self._reserved - count)

    def __contains__(self, message_id: UUID) -> bool:
        return message_id in self._members

    def put(self, job: Job, *, reserved: bool = False) -> bool:
        """Adds a job unless the same message is already queued; returns whether added."""
        if reserved:
            self.release(1)
        if job.message_id in self._members:
            return False
        self._members.add(job.message_id)
        self._queue.put_nowait(job)
        return True

    def online(self) -> None:
        self._online.set()

    def offline(self) -> None:
        self._online.clear()

    @property
    def is_online(self) -> bool:
        return self._online.is_set()

    async def close(self) -> None:
        """Stops sending; outcomes of messages already handed to the engine are still recorded."""
        self._closed = True
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._recording:
            await asyncio.wait(list(self._recording), timeout=10)
        for task in self._recording:
            task.cancel()
        await asyncio.gather(*self._recording, return_exceptions=True)

    async def _work(self) -> None:
        while not self._closed:
            job = await self._queue.get()
            try:
                outcome = await self._deliver(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker; the message stays pending
                log.exception("outbound worker %s failed on %s", self.name, job.message_id)
                self._finished(job)
                continue
            # Recording happens behind the worker: the next message is sent meanwhile. Each
            # outcome is recorded by a task of its own, started in the order of the sends
            # (tasks start in the order they are created), so their saves are submitted in
            # that order and share group commits, without waiting for the ones before.
            task = asyncio.create_task(self._record_one(*outcome))
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

    async def _record_one(
        self, job: Job, result: SendResult | None, error: EngineError | None, attempts: int
    ) -> None:
        try:
            await self._record(job, result, error, attempts)
        except asyncio.CancelledError:
            raise
        except Exception:  # the message stays pending and is sent again after a restart
            log.exception("outbound %s could not record the outcome of %s", self.name, job.message_id)
        finally:
            self._finished(job)

    def _finished(self, job: Job) -> None:
        self._members.discard(job.message_id)
        if not job.done.done():
            job.done.set_result(None)

    async def _deliver(self, job: Job) -> Outcome:
        attempts = 0
        while True:
            await self._wait_online()
            attempts += 1
            try:
                result = await self._attempt(job.text)
            except EngineError as error:
                if isinstance(error, NotConnected):
                    # Not the message's fault: wait for the connection, do not spend a retry.
                    attempts -= 1
                    self.offline()
                    continue
                if error.retryable and attempts <= self._policy.max_retries:
                    await asyncio.sleep(self._policy.delay_s(attempts))
                    continue
                return job, None, error, attempts
            return job, result, None, attempts

    async def _wait_online(self) -> None:
        """Until the session is online; re-checks every few seconds in case a reconnect
        was not reported (the engine answers NotConnected again if it is really down)."""
        if self._online.is_set():
            return  # without a suspension: a backlog is sent in one turn of the event loop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._online.wait(), 5.0)

    async def _attempt(self, text: OutboundText) -> SendResult:
        timeout = self._policy.timeout_ms / 1000 if self._policy.timeout_ms else None
        try:
            async with asyncio.timeout(timeout):
                return await self._send(text)
        except TimeoutError:
            raise EngineError("the engine did not answer in time", code="timeout", retryable=True) from None
