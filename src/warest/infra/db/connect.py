"""Connection helpers shared by the migration runner, projections and queries."""

from __future__ import annotations

import psycopg
from psycopg import sql


def psycopg_connect(database_url: str, schema: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A psycopg connection whose search_path is ``schema`` (created if missing)."""
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    conn.autocommit = autocommit
    return conn
