"""The command line's composition root: what ``warest users ...``, ``projections ...``,
``events export`` and ``migrate`` use, and nothing more.

It never builds an engine, a session runtime, auto-start or the webhook dispatcher, and it
starts no projector: a command run beside a live server records nothing about its sessions
and opens no second WhatsApp client on their devices. The read models it reads (the
registry, for the user commands) are kept by a runner of its own, which shares the work with
the server's projector (runners lock their tracking row per batch) and announces its batches
on the projector's channel, so servers following the read models see them at once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import asyncpg

from warest.app.users import UserService
from warest.bootstrap.foundation import (
    Database,
    build_runners,
    build_store,
    build_users,
    create_pool,
    load_settings_pepper,
    seed_admin,
)
from warest.config import Settings
from warest.infra.db.migrations import Migration
from warest.infra.eventstore.adapter import AsyncEventStore
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner
from warest.infra.projector import projector_channel
from warest.infra.readmodels import LocalReadModels

USER_READ_MODELS = ("registry",)
"""The read models the user commands read (``rm_users``) and wait for after a change."""

POOL_SIZE = 2


class AdminContainer:
    """Built piece by piece, as a command needs: ``migrate()``, ``event_store()`` and
    ``runners()`` (blocking, for the synchronous commands), ``users()`` (async). ``aclose()``
    (or ``close()`` when nothing asynchronous was built) stops what was built."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings)
        self._store: EventStoreApp | None = None
        self._read_models: LocalReadModels | None = None
        self._committer: GroupCommitter | None = None
        self._pool: asyncpg.Pool | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._users: UserService | None = None

    @property
    def database_url(self) -> str:
        return self.database.start()

    def migrate(self) -> list[Migration]:
        return self.database.migrate()

    def event_store(self) -> EventStoreApp:
        """The event store, once the migrations are applied."""
        if self._store is None:
            self.migrate()
            self._store = build_store(self.settings, self.database_url)
        return self._store

    def runners(
        self, *, with_outbox: bool = False, only: tuple[str, ...] | None = None
    ) -> list[ProjectionRunner]:
        """Runners of the read models (and the outbox): for rebuilds, retries and catch-ups."""
        return build_runners(
            self.event_store(), self.settings, self.database_url, with_outbox=with_outbox, only=only
        )

    async def users(self) -> UserService:
        """``UserService`` over the event store, the registry read model (kept here) and the
        pool; the configured admin is seeded first, as a server does, under the start-up lock."""
        if self._users is not None:
            return self._users
        settings = self.settings
        await asyncio.to_thread(self.database.start)
        async with self.database.startup():
            store = await asyncio.to_thread(self.event_store)
            runners = build_runners(
                store,
                settings,
                self.database_url,
                only=USER_READ_MODELS,
                announce=projector_channel(settings.database_schema),
            )
            self._read_models = LocalReadModels(runners, store.max_position)
            self._committer = GroupCommitter(store, enabled=False)
            self._committer.add_listener(self._read_models.nudge)
            self._committer.start()
            await asyncio.to_thread(self._read_models.start, asyncio.get_running_loop())
            self._pool = await create_pool(settings, self.database_url, max_size=POOL_SIZE)
            self._executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="warest-admin")
            event_store = AsyncEventStore(store, self._committer, self._executor)
            pepper = await load_settings_pepper(settings)
            users = build_users(settings, event_store, self._pool, self._read_models, pepper)
            await seed_admin(settings, users)
        self._users = users
        return users

    async def aclose(self) -> None:
        if self._read_models is not None:
            await asyncio.to_thread(self._read_models.stop)
        if self._committer is not None:
            await asyncio.to_thread(self._committer.stop)
        if self._pool is not None:
            await self._pool.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Closes the event store and stops the embedded server (when this process started it)."""
        if self._store is not None:
            self._store.close()
            self._store = None
        self.database.stop()

    def __enter__(self) -> AdminContainer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> AdminContainer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()
