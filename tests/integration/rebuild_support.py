"""What the rebuild tests share: the read-model tables, their dumps, and a reset of the log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import psycopg
from psycopg import sql

from projections import ALL
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.projection_runner import ProjectionRunner

TABLES = tuple(table for projection in ALL for table in projection.tables)


def dump(database_url: str, schema: str, tables: Iterable[str] = TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table, in a total order that does not depend on physical storage."""
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return {
            table: conn.execute(
                sql.SQL("SELECT * FROM {} t ORDER BY (t.*)::text").format(sql.Identifier(table))
            ).fetchall()
            for table in tables
        }


def checksum(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def parked(database_url: str, schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute("SELECT name, position, topic, error FROM projection_parked").fetchall()


def reset(database_url: str, schema: str, events_table: str) -> None:
    """An empty log and empty read models (the schema and its migrations stay)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        names = [*TABLES, "projection_tracking", "projection_parked"]
        conn.execute(
            sql.SQL("TRUNCATE {}, {}").format(
                sql.SQL(events_table), sql.SQL(", ").join(map(sql.Identifier, names))
            )
        )


def runners(store: Any, database_url: str, schema: str, batch_size: int = 20_000) -> list[ProjectionRunner]:
    return [
        ProjectionRunner(store, projection(), database_url, schema, batch_size=batch_size)
        for projection in ALL
    ]


def save_and_follow(
    committer: GroupCommitter, live: list[ProjectionRunner], saves: Iterable[tuple[list[Any], bool]]
) -> None:
    """Each save as a command saves it; the read models follow after the saves marked so
    (several saves then land in one batch), as the server's runners do."""
    for aggregates, follow in saves:
        if aggregates:
            committer.save(*aggregates)
        if follow:
            for runner in live:
                runner.follow()
    for runner in live:
        runner.follow()


@contextmanager
def pipelined_calls() -> Iterator[list[str]]:
    """The names of the runners that took the pipelined catch-up meanwhile."""
    calls: list[str] = []
    original = ProjectionRunner._pipelined

    def counting(self: ProjectionRunner, progress: Any) -> int:
        calls.append(self.name)
        return original(self, progress)

    with patch.object(ProjectionRunner, "_pipelined", counting):
        yield calls
