"""A tailing reader of the event log, as projection runners read it."""

from __future__ import annotations

import threading
import time

from warest.infra.eventstore.store import EventStoreApp


def follow(store: EventStoreApp, seen: list[int], done: threading.Event, timeout: float = 120) -> None:
    """Appends every notification id it reads to ``seen``, page by page from the last one
    read, until ``done`` is set and it has reached the end of the log."""
    position = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = store.select(position, 200)
        for notification in page:
            seen.append(notification.id)
            position = notification.id
        if not page:
            if done.is_set() and store.max_position() == position:
                return
            time.sleep(0.001)
