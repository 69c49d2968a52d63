"""Connection helpers shared by the migration runner, projections and queries."""

from __future__ import annotations

import psycopg
from psycopg import sql


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock held on its own connection."""

    def __init__(self, database_url: str, key: int) -> None:
        self._url = database_url
        self._key = key
        self._conn: psycopg.Connection | None = None

    def acquire(self) -> None:
        self._conn = psycopg.connect(self._url, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s)", (self._key,))

    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; False otherwise (the connection is closed)."""
        self._conn = psycopg.connect(self._url, autocommit=True)
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        if row is not None and row[0]:
            return True
        self._conn.close()
        self._conn = None
        return False

    def alive(self) -> bool:
        """Whether the lock is still held: its connection still answers."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    @property
    def backend_pid(self) -> int | None:
        return self._conn.info.backend_pid if self._conn is not None and not self._conn.closed else None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            except psycopg.Error:
                pass  # the connection is gone, and the lock with it
            finally:
                self._conn.close()
                self._conn = None


def psycopg_connect(database_url: str, schema: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A psycopg connection whose search_path is ``schema`` (created if missing)."""
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    conn.autocommit = autocommit
    return conn
