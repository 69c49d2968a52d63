"""Process hygiene: no zombie from os.popen, stop signals seen while starting and passed on,
dead processes dropped from the embedded server's handle list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import psutil

from warest.infra.db.embedded import HANDLES, prune_handles
from warest.supervision import stop_requests, waited_popen


def zombies() -> list[int]:
    return [p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]


def test_popen_read_without_close_leaves_no_zombie() -> None:
    before = zombies()
    with waited_popen():
        assert os.popen("echo hello").read() == "hello\n"
    assert zombies() == before


def test_stop_signal_while_starting_is_seen_and_passed_on() -> None:
    seen: list[int] = []

    def previous(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)

    original = signal.signal(signal.SIGTERM, previous)
    try:
        with stop_requests() as stopping:
            assert not stopping.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stopping.wait(5)
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous  # restored after the block
    finally:
        signal.signal(signal.SIGTERM, original)


def test_dead_processes_are_dropped_from_the_handle_list(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / HANDLES).write_text(json.dumps([gone.pid, os.getpid()]))
    assert prune_handles(tmp_path) == [os.getpid()]
    assert json.loads((tmp_path / HANDLES).read_text()) == [os.getpid()]
