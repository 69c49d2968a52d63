"""What every composition root builds the same way: the database (a URL, or the embedded
server), the start-up lock and the migrations, the event store, the projection runners, the
asyncpg pool, and ``UserService``. The server, the projector and the admin container call
these; none of them builds its own copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import zlib
from collections.abc import AsyncIterator, Collection

import asyncpg

import projections
from projections.outbox import DefaultEndpoint, OutboxProjection
from warest.app.ports import EventStore, ReadModelWaiter
from warest.app.security import KeyDigester
from warest.app.users import LoginPolicy, UserService
from warest.config import Settings
from warest.infra.clock import SystemClock
from warest.infra.db.connect import AdvisoryLock
from warest.infra.db.embedded import EmbeddedPostgres
from warest.infra.db.migrations import Migration, migrate
from warest.infra.db.queries import PgAuthSessionStore, PgLoginGuardStore, PgRegistryQueries
from warest.infra.eventstore.store import EventStoreApp, postgres_env
from warest.infra.passwords import Argon2Hasher
from warest.infra.pepper import load_pepper
from warest.infra.projection_runner import ProjectionRunner

GC_THRESHOLDS = (20_000, 20, 100)


def settle_garbage_collector() -> None:
    """Takes what startup built (code, the framework, pools: ~100,000 objects) out of the
    cyclic collector's reach and makes its passes rarer. Full collections used to scan all
    of it and stop the process for 45-65 ms a few times a minute under load, which was the
    tail of webhook latency (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def startup_lock_key(schema: str) -> int:
    """One startup lock per schema: servers (and test runs) in other schemas never wait."""
    return 0x5741_5245_0000_0000 | zlib.crc32(f"startup:{schema}".encode())


def resolve_database_url(settings: Settings, embedded: EmbeddedPostgres | None) -> str:
    if settings.database_url:
        return settings.database_url
    if embedded is None:
        raise RuntimeError("no WAREST_DATABASE_URL and no embedded server")
    return embedded.start()


class Database:
    """The database of one process: ``WAREST_DATABASE_URL``, or the embedded PostgreSQL in
    the data directory, started here (and stopped by ``stop``) when there is no URL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = None if settings.database_url else EmbeddedPostgres(settings.data_path)
        self.url = ""

    def start(self) -> str:
        """The URL (blocking: starts the embedded server when there is one)."""
        if not self.url:
            self.url = resolve_database_url(self.settings, self.embedded)
        return self.url

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    @contextlib.asynccontextmanager
    async def startup(self) -> AsyncIterator[None]:
        """Holds the schema's start-up lock: several processes starting on an empty database
        create the tables and seed the admin one after the other, the others then find
        everything in place."""
        lock = AdvisoryLock(self.url, startup_lock_key(self.settings.database_schema))
        await asyncio.to_thread(lock.acquire)
        try:
            yield
        finally:
            await asyncio.to_thread(lock.release)

    def migrate(self) -> list[Migration]:
        """Applies the pending migrations (blocking; each file once, under its own lock)."""
        return migrate(self.start(), self.settings.database_schema)


def build_store(settings: Settings, database_url: str) -> EventStoreApp:
    return EventStoreApp(
        env=postgres_env(database_url, settings.database_schema, settings.database_pool_size)
    )


def build_runners(
    store: EventStoreApp,
    settings: Settings,
    database_url: str,
    *,
    with_outbox: bool = False,
    announce: str | None = None,
    only: Collection[str] | None = None,
) -> list[ProjectionRunner]:
    """The read models (``projections.ALL``, which ``projections rebuild`` may rebuild) and,
    for a server with webhooks on, the webhook outbox (a durable queue: never rebuilt).
    ``only``: just the read models of these names."""
    schema = settings.database_schema
    runners = [
        ProjectionRunner(
            store,
            projection_class(),
            database_url,
            schema,
            announce=announce,
            min_interval_s=settings.projection_interval_ms / 1000,
        )
        for projection_class in projections.ALL
        if only is None or projection_class.name in only
    ]
    if with_outbox and settings.webhooks_enabled and (only is None or OutboxProjection.name in only):
        default = DefaultEndpoint(settings.webhook_default_url) if settings.webhook_default_url else None
        outbox = OutboxProjection(store.events_table, default, settings.webhook_command_prefixes)
        runners.append(
            ProjectionRunner(store, outbox, database_url, schema, batch_size=5000, announce=announce)
        )
    return runners


def server_read_model_names(settings: Settings) -> list[str]:
    """What a server reads: every read model, and the outbox when webhooks are on."""
    names = [projection_class.name for projection_class in projections.ALL]
    if settings.webhooks_enabled:
        names.append(OutboxProjection.name)
    return names


async def _keep_connection_state(connection: asyncpg.Connection) -> None:
    """asyncpg's default reset costs a round trip on every release; our queries set no
    session state (the search_path comes from the connection's server settings)."""


async def create_pool(settings: Settings, database_url: str, *, max_size: int | None = None) -> asyncpg.Pool:
    """The asyncpg pool of the queries (search path = the schema)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size or settings.database_pool_size,
        server_settings={"search_path": settings.database_schema},
        reset=_keep_connection_state,  # nothing session-level is ever set: skip RESET ALL
    )
    return pool


async def load_settings_pepper(settings: Settings) -> bytes:
    """The pepper of API-key digests and webhook secrets (``WAREST_SECRET_KEY`` or the data dir)."""
    return await asyncio.to_thread(load_pepper, settings.secret_key, settings.data_path)


def build_users(
    settings: Settings, event_store: EventStore, pool: asyncpg.Pool, waiter: ReadModelWaiter, pepper: bytes
) -> UserService:
    return UserService(
        event_store,
        PgRegistryQueries(pool),
        waiter,
        Argon2Hasher(),
        KeyDigester(pepper),
        PgLoginGuardStore(pool),
        PgAuthSessionStore(pool),
        SystemClock(),
        LoginPolicy(
            max_failures=settings.login_max_failures,
            lock_base_s=settings.login_lock_base_s,
            docs_session_ttl_s=settings.docs_session_ttl_s,
        ),
    )


async def seed_admin(settings: Settings, users: UserService) -> None:
    """The admin of the configuration (``WAREST_AUTHADMIN_*``, ``WAREST_ADMIN_APIKEY``)."""
    await users.seed_admin(settings.admin_username, settings.admin_password, settings.admin_api_key)
