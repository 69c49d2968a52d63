"""The application's EventStore port over the eventsourcing application.

Saves go through the group committer; loads run on a bounded thread pool, because the
eventsourcing library is synchronous and must never block the event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp


class AsyncEventStore:
    def __init__(
        self,
        store: EventStoreApp,
        committer: GroupCommitter | AsyncGroupCommitter,
        executor: ThreadPoolExecutor,
    ) -> None:
        self._store = store
        self._committer = committer
        self._executor = executor

    async def save(self, *aggregates: Any) -> int:
        return await self._committer.record(aggregates)

    async def get(self, aggregate_id: UUID) -> Any | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._get, aggregate_id)

    def _get(self, aggregate_id: UUID) -> Any | None:
        try:
            return self._store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
