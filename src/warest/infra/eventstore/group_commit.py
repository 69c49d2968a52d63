"""Group commit: concurrent saves gathered into one event-store transaction.

The event table is written under an exclusive table lock (commit order = id order), so
single-event transactions are bounded by commit latency (~700/s). A single writer thread
takes what callers submitted within a short window and records all of it with one
``put()``. When a batch hits a version conflict, it is retried submission by submission,
so only the conflicting caller sees the conflict.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, Recording

from warest.app.ports import ConcurrencyConflict
from warest.infra.eventstore.store import EventStoreApp

CommitListener = Callable[[int], None]


@dataclass(slots=True)
class _Submission:
    events: Sequence[Any]
    future: Future[list[Recording[Any]]] = field(default_factory=Future)


class GroupCommitter:
    def __init__(
        self,
        store: EventStoreApp,
        *,
        enabled: bool = True,
        window_s: float = 0.002,
        max_batch_events: int = 1000,
    ) -> None:
        self._store = store
        self.enabled = enabled
        self._window_s = window_s
        self._max_batch = max_batch_events
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._listeners: list[CommitListener] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.saved_events = 0

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(max_position)`` is called after each commit, from the writer thread."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Starts the writer thread (also when grouping is off: callers never write inline)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="warest-group-commit", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Writes everything already submitted, then stops the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout=30)

    def submit(self, events: Sequence[Any]) -> Future[list[Recording[Any]]]:
        """Records ``events`` atomically (with others); the future gives their recordings."""
        submission = _Submission(events)
        if not events:
            submission.future.set_result([])
            return submission.future
        with self._lock:
            if self._thread is not None:
                self._queue.put(submission)
                return submission.future
        self._write_alone(submission)  # not started (CLI, tests): write in the caller's thread
        return submission.future

    async def record(self, aggregates: Sequence[Any]) -> int:
        """From the event loop: records the pending events of ``aggregates``; returns the
        highest new position (0: nothing to record). ``ConcurrencyConflict`` on a taken version."""
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if not events:
            return 0
        try:
            recordings = await asyncio.wrap_future(self.submit(events))
        except IntegrityError as error:
            raise ConcurrencyConflict(str(error)) from error
        return max(r.notification.id for r in recordings)

    def save(self, *aggregates: Any) -> list[Recording[Any]]:
        """Blocking save of the pending events of ``aggregates``."""
        events: list[Any] = []
        for aggregate in aggregates:
            events.extend(aggregate.collect_events())
        return self.submit(events).result()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not self.enabled:
                self._write_alone(first)
                continue
            batch = [first]
            size = len(first.events)
            deadline = time.monotonic() + self._window_s
            stop = False
            while size < self._max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item.events)
            self._write_batch(batch)
            if stop:
                return

    def _write_batch(self, batch: list[_Submission]) -> None:
        if len(batch) == 1:
            self._write_alone(batch[0])
            return
        events = [event for submission in batch for event in submission.events]
        try:
            recordings = self._store.events.put(events)
        except IntegrityError:
            for submission in batch:
                self._write_alone(submission)
            return
        except Exception as error:  # the database is down: every caller must hear it
            for submission in batch:
                _settle(submission.future, error=error)
            return
        self._account(recordings)
        offset = 0
        for submission in batch:
            n = len(submission.events)
            _settle(submission.future, recordings[offset : offset + n])
            offset += n

    def _write_alone(self, submission: _Submission) -> None:
        try:
            recordings = self._store.events.put(list(submission.events))
        except Exception as error:
            _settle(submission.future, error=error)
            return
        self._account(recordings)
        _settle(submission.future, recordings)

    def _account(self, recordings: list[Recording[Any]]) -> None:
        self.batches += 1
        self.saved_events += len(recordings)
        if recordings:
            position = max(r.notification.id for r in recordings)
            for listener in self._listeners:
                listener(position)


def _settle(
    future: Future[list[Recording[Any]]],
    result: list[Recording[Any]] | None = None,
    error: BaseException | None = None,
) -> None:
    """Resolves a caller's future; a caller that gave up (cancelled) is simply skipped.

    The events are recorded either way: cancelling a wait does not cancel a write.
    """
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])
    except InvalidStateError:
        pass
