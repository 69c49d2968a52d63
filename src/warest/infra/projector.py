"""The projector: the process that keeps the read models (``warest projector``).

A server worker starts one as its child (``WAREST_PROJECTOR=process``, the default), so the
projection runners no longer share the worker's GIL with the HTTP requests. Several may run
against one schema (one per worker, per host): an advisory-lock lease lets one of them work
and keeps the others waiting in reserve. Each committed batch is announced on a channel of
the schema, which ``RemoteReadModels`` follows in the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Mapping

log = logging.getLogger("warest.projector")

STOP_TIMEOUT_S = 10.0
RESTART_MAX_S = 30.0


def projector_lock_key(schema: str) -> int:
    return 0x5741_5245_0000_0000 | zlib.crc32(f"projector:{schema}".encode())


def projector_channel(schema: str) -> str:
    """Where the projector announces positions (channels are database-wide: one per schema)."""
    return f"warest_rm_{zlib.crc32(schema.encode()):08x}"


class ProjectorProcess:
    """A ``warest projector`` child of this process, restarted if it dies.

    The child exits by itself within a second if this process disappears (it watches its
    parent, as server workers watch ``warest serve``), so a ``kill -9`` leaves no orphan
    projecting next to a restarted server.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = {**os.environ, **env, "WAREST_SUPERVISOR_PID": str(os.getpid())}
        self._child: subprocess.Popen[bytes] | None = None
        self._watch: asyncio.Task[None] | None = None

    def alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def start(self) -> None:
        self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name="projector-watch")

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "warest", "projector", "--no-migrate"]
        self._child = subprocess.Popen(command, env=self._env)  # noqa: S603 (our own interpreter)
        log.info("projector started (pid %s)", self._child.pid)

    async def _supervise(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(0.5)
            child = self._child
            if child is None or child.poll() is None:
                continue
            log.error(
                "projector (pid %s) exited with %s; restarting in %.0f s", child.pid, child.returncode, delay
            )
            await asyncio.sleep(delay)
            self._spawn()
            delay = min(delay * 2, RESTART_MAX_S)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the child; SIGKILL if it has not exited ``timeout_s`` later."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        child = self._child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(child.wait, timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("projector (pid %s) did not stop in %.1f s: killed", child.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await asyncio.to_thread(child.wait)
