"""Child processes that must not outlive their parent."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_REQUESTED = threading.Event()
"""Set once this process has received SIGTERM or SIGINT during a ``stop_requests`` block."""


def exit_with_supervisor(supervisor_pid: int, interval_s: float = 0.5) -> None:
    """A process whose supervisor died (SIGKILL leaves no time to stop children) would go
    on next to a restarted server: a server worker would keep serving stale sessions, a
    projector would hold the projector lease. It exits instead (status 70)."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != supervisor_pid:
                logging.getLogger("warest").error("supervisor %s is gone; exiting", supervisor_pid)
                os._exit(70)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """An event set when this process receives SIGTERM or SIGINT, while the block runs.

    A server starts inside the ASGI lifespan, where the server's own signal handling only
    stops it after the start has finished: a start that waits (for a projector, a lock)
    would make SIGTERM wait too. The handlers installed here set the event and pass the
    signal on to the handlers they replace (asyncio's loop handlers are woken through the
    wakeup fd anyway), so the server still learns it must stop. Outside the main thread
    (an app in a test harness) nothing is installed and the event is never set."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        requested.set()
        STOP_REQUESTED.set()
        before = previous.get(signal.Signals(signum))
        if callable(before):
            before(signum, frame)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield requested
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextlib.contextmanager
def waited_popen() -> Iterator[None]:
    """``os.popen`` whose child is always waited for, while the block runs.

    Some libraries read ``os.popen(command).read()`` at import (neonize runs ``uname -a``)
    and never close the pipe: each call leaves a ``[sh] <defunct>`` child behind for the
    life of the process. Here the command runs to its end and its output is returned."""
    original = os.popen

    def popen(cmd: str, mode: str = "r", buffering: int = -1) -> Any:
        if mode != "r":
            return original(cmd, mode, buffering)
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)  # noqa: S602
        return io.StringIO(done.stdout)

    os.popen = popen
    try:
        yield
    finally:
        os.popen = original


def on_stop_signal(callback: Callable[[], None]) -> None:
    """Runs ``callback`` in a daemon thread at the first SIGTERM or SIGINT, beside the
    handlers already installed (which still run, as in ``stop_requests``). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    fired = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if not fired.is_set():
            fired.set()
            threading.Thread(target=callback, name="stop-deadline", daemon=True).start()
        before = previous.get(signal.Signals(signum))
        if callable(before):
            before(signum, frame)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
