"""Event-store fixtures on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from warest.infra.db.migrations import migrate
from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp, postgres_env


@pytest.fixture
def store(database_url: str, schema: str) -> Iterator[EventStoreApp]:
    migrate(database_url, schema)
    app = EventStoreApp(env=postgres_env(database_url, schema, pool_size=10))
    yield app
    app.close()


@pytest.fixture
def committer(store: EventStoreApp) -> Iterator[GroupCommitter]:
    gc = GroupCommitter(store, enabled=True, window_s=0.002)
    gc.start()
    yield gc
    gc.stop()


@pytest.fixture
async def writer(store: EventStoreApp, database_url: str, schema: str) -> AsyncIterator[AsyncGroupCommitter]:
    """The server's event-loop group committer on the test's schema."""
    committer = AsyncGroupCommitter(store, database_url, schema, window_s=0.002)
    await committer.start()
    yield committer
    await committer.stop()
