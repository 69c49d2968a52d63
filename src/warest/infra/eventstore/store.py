"""The eventsourcing application that owns the event table, and its settings.

Lock mode only: ``POSTGRES_ENABLE_DB_FUNCTIONS`` is forced off because in 9.5.6 the
database-function insert path skips the table lock and a tailing reader can miss events.
The environment is built from our configuration alone; ``os.environ`` is not consulted.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.utils import Environment
from psycopg import sql

from warest.infra.eventstore.mapper import MsgspecMapper

APPLICATION_NAME = "warest"

POOL_TIMEOUT_S = 2
"""How long a load waits for a pooled connection (eventsourcing's ``POSTGRES_CONNECT_TIMEOUT``,
30 s by default). The library tries a load ten times: with the database down, a request
answers 503 after ~20 s instead of hanging for minutes."""

RECONNECT_TIMEOUT_S = 5.0
"""How long the pool keeps re-trying, with a doubling delay, to replace a lost connection
before a new attempt may start (psycopg_pool's default is 5 minutes, so after an outage the
pool could stay empty for as long as the outage lasted)."""


def postgres_env(database_url: str, schema: str, pool_size: int) -> dict[str, str]:
    """eventsourcing's POSTGRES_* settings from a ``postgresql://`` URL."""
    url = urlparse(database_url)
    query = parse_qs(url.query)
    host = query.get("host", [url.hostname or "127.0.0.1"])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "MAPPER_TOPIC": f"{MsgspecMapper.__module__}:{MsgspecMapper.__qualname__}",
        "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(url.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_SCHEMA": "" if schema == "public" else schema,
        # A small resident pool that grows under load: idle servers hold few connections.
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_LOCK_TIMEOUT": "0",
        "POSTGRES_CONNECT_TIMEOUT": str(POOL_TIMEOUT_S),
        "POSTGRES_ENABLE_DB_FUNCTIONS": "no",
        "CREATE_TABLE": "yes",
        "ORIGINATOR_ID_TYPE": "uuid",
    }


class EventStoreApp(Application[Any]):
    """Owns the ``warest_events`` table (or ``<schema>.warest_events``)."""

    name = APPLICATION_NAME

    def __init__(self, env: dict[str, str] | None = None) -> None:
        settings = env or {}
        if settings.get("POSTGRES_SCHEMA"):
            _ensure_schema(settings)
        super().__init__(env=settings)
        pool = getattr(getattr(self.recorder, "datastore", None), "pool", None)
        if pool is not None:
            pool.reconnect_timeout = RECONNECT_TIMEOUT_S

    def construct_env(self, name: str, env: Any = None) -> Environment:
        settings = {k: v for k, v in dict(env or {}).items() if not k.endswith("ENABLE_DB_FUNCTIONS")}
        settings["POSTGRES_ENABLE_DB_FUNCTIONS"] = "no"
        return Environment(name, settings)

    def select(self, after: int, limit: int, topics: tuple[str, ...] = ()) -> list[Notification]:
        """Notifications with id > ``after``, in commit order (ids may have gaps)."""
        return list(
            self.recorder.select_notifications(
                start=after, limit=limit, topics=topics, inclusive_of_start=False
            )
        )

    def max_position(self) -> int:
        return int(self.recorder.max_notification_id() or 0)

    @property
    def events_table(self) -> str:
        return str(self.recorder.events_table_name)  # type: ignore[attr-defined]

    @property
    def channel(self) -> str:
        return str(self.recorder.channel_name)  # type: ignore[attr-defined]


def _ensure_schema(settings: dict[str, str]) -> None:
    with psycopg.connect(
        dbname=settings["POSTGRES_DBNAME"],
        host=settings["POSTGRES_HOST"],
        port=settings.get("POSTGRES_PORT", "5432"),
        user=settings["POSTGRES_USER"],
        password=settings.get("POSTGRES_PASSWORD", ""),
        autocommit=True,
    ) as conn:
        schema = sql.Identifier(settings["POSTGRES_SCHEMA"])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
