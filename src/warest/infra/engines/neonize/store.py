"""Where each session's whatsmeow device lives, and how it is wiped.

goneonize opens the database it is given and, without a device JID, resumes the *first*
device stored there (``GetFirstDevice``). Sharing one store between sessions would hand
every session the same WhatsApp account, so every session gets its own store:

* PostgreSQL (``device_store`` starts with "postgres"): one schema per session, selected
  with a ``search_path`` startup parameter that lib/pq passes to the server. The schema is
  created before neonize connects (whatsmeow creates its tables inside it) and dropped
  when the session's credentials are wiped.
* SQLite (any other value, a file path such as ``data/neonize.db``): one file per session
  in a directory named after it (``data/neonize/<session>.db``); wiping deletes the file.

goneonize opens a new database pool for every client it starts and never closes it: on
PostgreSQL each replaced client (a reconnect that needed a new client) left a connection
open on the server for good. So each client's connections carry their own
``application_name`` (``warest-neonize-<session hash>-<client hash>``), and ``release``
ends exactly those once the client has stopped; nobody uses that pool afterwards, and
``database/sql`` opens connections only on demand. (A SQLite pool holds a file handle of
the process, not a server connection.)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from warest.app.engine import SessionRef

_UNSAFE = re.compile(r"[^a-z0-9]+")
APPLICATION_NAME = "warest-neonize"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class DeviceStore(Protocol):
    async def prepare(self, session: SessionRef, client_id: str | None = None) -> str:
        """Makes the session's store ready; returns the database string for neonize (for
        the client ``client_id``, whose connections ``release`` can then close)."""
        ...

    async def release(self, database: str) -> None:
        """Closes what a stopped client opened on ``database`` (from ``prepare``)."""
        ...

    async def wipe(self, session: SessionRef) -> None:
        """Deletes every credential of the session (idempotent)."""
        ...


def session_slug(session: SessionRef, limit: int = 40) -> str:
    """A file- and identifier-safe name: readable prefix plus a hash that keeps it unique."""
    digest = hashlib.sha256(session.key.encode()).hexdigest()[:10]
    readable = _UNSAFE.sub("_", session.key.lower()).strip("_")[:limit] or "session"
    return f"{readable}_{digest}"


def device_store(spec: str) -> DeviceStore:
    """The store for a ``device_store`` setting: a postgres URL or a SQLite path."""
    if spec.startswith("postgres"):
        return PostgresDeviceStore(spec)
    return SqliteDeviceStore(spec)


class SqliteDeviceStore:
    def __init__(self, path: str | Path) -> None:
        base = Path(path).expanduser().resolve()
        self.directory = base.with_suffix("") if base.suffix in _SQLITE_SUFFIXES else base

    def path(self, session: SessionRef) -> Path:
        return self.directory / f"{session_slug(session)}.db"

    async def prepare(self, session: SessionRef, client_id: str | None = None) -> str:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        return str(self.path(session))

    async def release(self, database: str) -> None:
        """Nothing on a server to close: the file is the process's own."""

    async def wipe(self, session: SessionRef) -> None:
        path = self.path(session)

        def remove() -> None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)

        await asyncio.to_thread(remove)


class PostgresDeviceStore:
    def __init__(self, url: str) -> None:
        self.url = url

    def schema(self, session: SessionRef) -> str:
        return f"wa_{session_slug(session)}"

    def application_prefix(self, session: SessionRef) -> str:
        """The start of the ``application_name`` of every client of ``session``."""
        return f"{APPLICATION_NAME}-{session_slug(session).rpartition('_')[2]}-"

    def location(self, session: SessionRef, client_id: str | None = None) -> str:
        """The URL neonize opens: ours, with the session's schema as its search_path.

        lib/pq (goneonize's driver) defaults to ``sslmode=require`` where libpq and
        psycopg default to ``prefer``; without an explicit sslmode the same URL would
        work for the gateway and fail for neonize on a server without TLS, so ``prefer``
        is added when the URL does not choose.
        """
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
        if not any(k == "sslmode" for k, _ in query):
            query.append(("sslmode", "prefer"))
        query = [(k, v) for k, v in query if k != "application_name"]
        query.append(("search_path", self.schema(session)))
        if client_id is not None:
            client_hash = hashlib.sha256(client_id.encode()).hexdigest()[:12]
            query.append(("application_name", self.application_prefix(session) + client_hash))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def prepare(self, session: SessionRef, client_id: str | None = None) -> str:
        """Creates the schema, and in it whatsmeow's version table, empty.

        whatsmeow's upgrade asks whether ``whatsmeow_version`` exists without naming a
        schema: once one session's schema has it, every later session's upgrade skipped
        creating it and failed ("relation whatsmeow_version does not exist"), so only the
        first PostgreSQL session of a database could start. An empty table reads as version
        0: whatsmeow then creates its tables in the session's schema as on a new database."""
        await self._execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}"), session)
        version_table = "CREATE TABLE IF NOT EXISTS {}.whatsmeow_version (version INTEGER, compat INTEGER)"
        await self._execute(sql.SQL(version_table), session)
        return self.location(session, client_id)

    async def release(self, database: str) -> None:
        """Ends the server connections of the client that was given ``database``: those
        with its own ``application_name`` (unique per client) on this database."""
        name = dict(parse_qsl(urlsplit(database).query)).get("application_name")
        if not name or not name.startswith(APPLICATION_NAME + "-"):
            return  # not a client's location: nothing of its own to end
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
                (name,),
            )

    async def wipe(self, session: SessionRef) -> None:
        await self._execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE"), session)

    async def _execute(self, statement: sql.SQL, session: SessionRef) -> None:
        query = statement.format(sql.Identifier(self.schema(session)))
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(query)
