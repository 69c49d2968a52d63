"""The parked events of a schema's read models, and their retry (``app.parking`` port)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from warest.app.parking import ParkedEvent, RetryOutcome
from warest.infra.db.connect import psycopg_connect
from warest.infra.projection_runner import ProjectionRunner
from warest.infra.readmodels import LocalReadModels, ReadModels

_COLUMNS = (
    "name, position, originator_id::text, originator_version, topic, error, parked_at, attempts, retried_at"
)


class PgParkedEvents:
    """Lists ``projection_parked`` and retries through runners: this process's own (inline
    read models), else runners made for the retry (``make_runners``), which take each read
    model's tracking row lock as the projector does."""

    def __init__(
        self,
        read_models: ReadModels,
        names: Sequence[str],
        make_runners: Callable[[], list[ProjectionRunner]],
        database_url: str,
        schema: str,
    ) -> None:
        self._read_models = read_models
        self._names = list(names)
        self._make_runners = make_runners
        self._url = database_url
        self._schema = schema

    def names(self) -> list[str]:
        return list(self._names)

    def counts(self) -> dict[str, int]:
        return self._read_models.parked()

    async def tally(self) -> dict[str, int]:
        return await asyncio.to_thread(self._tally)

    def _tally(self) -> dict[str, int]:
        with psycopg_connect(self._url, self._schema, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT name, count(*) FROM projection_parked WHERE name = ANY(%s)"
                " GROUP BY name ORDER BY name",
                (self._names,),
            ).fetchall()
        return {name: int(count) for name, count in rows}

    async def events(self, projection: str | None = None, limit: int = 100) -> list[ParkedEvent]:
        return await asyncio.to_thread(self._list, projection, limit)

    def _list(self, projection: str | None, limit: int) -> list[ParkedEvent]:
        with psycopg_connect(self._url, self._schema, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM projection_parked WHERE name = ANY(%s)"
                " ORDER BY position, name LIMIT %s",
                ([projection] if projection else self._names, limit),
            ).fetchall()
        return [ParkedEvent(*row) for row in rows]

    async def retry(self, projection: str | None = None) -> list[RetryOutcome]:
        return await asyncio.to_thread(self._retry, projection)

    def _retry(self, projection: str | None) -> list[RetryOutcome]:
        local = self._read_models if isinstance(self._read_models, LocalReadModels) else None
        runners = list(local.runners.values()) if local is not None else self._make_runners()
        outcomes = []
        try:
            for runner in runners:
                if projection is None or runner.name == projection:
                    retried = runner.retry_parked()
                    outcomes.append(RetryOutcome(runner.name, retried.applied, retried.failed))
        finally:
            if local is None:
                for runner in runners:
                    runner.stop()
        return outcomes
