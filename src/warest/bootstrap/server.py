"""The server's composition root: what a ``warest serve`` worker (and an in-process test
app) runs: engines, session runtimes and auto-start, the webhook dispatcher, the HTTP
services. The HTTP layer receives a ``Services`` object made only of application services
and ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import zlib
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import asyncpg

from projections.outbox import OutboxProjection
from warest import __version__
from warest.app.actions import ActionService
from warest.app.engine import Engine, SessionRef
from warest.app.history import EventHistory
from warest.app.manager import SessionManager
from warest.app.messaging import MessagingService
from warest.app.outbound import RetryPolicy
from warest.app.readside import ReadService
from warest.app.runtime import LifecycleSettings, QueueSettings
from warest.app.services import Services
from warest.app.sessions import SessionService
from warest.app.webhook_dispatch import DeliveryPolicy, Dispatcher, Target
from warest.app.webhooks import DeliveryDisabler, WebhookActions, WebhookService
from warest.bootstrap.foundation import (
    Database,
    build_runners,
    build_store,
    build_users,
    create_pool,
    load_settings_pepper,
    seed_admin,
    server_read_model_names,
    settle_garbage_collector,
)
from warest.config import Settings
from warest.domain.ids import DEFAULT_WEBHOOK_ENDPOINT
from warest.infra.clock import SystemClock
from warest.infra.db.connect import AdvisoryLock
from warest.infra.db.history import PgEventHistory
from warest.infra.db.lease import Lease
from warest.infra.db.login_qr import PgLoginQrs
from warest.infra.db.queries import (
    PgMessagingQueries,
    PgRegistryQueries,
    database_ok,
)
from warest.infra.db.readside import PgReadQueries
from warest.infra.engines.sandbox.engine import SandboxEngine
from warest.infra.engines.sandbox.network import SandboxNetwork
from warest.infra.engines.sandbox.store import SandboxStore
from warest.infra.eventstore.adapter import AsyncEventStore
from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.parking import PgParkedEvents
from warest.infra.projector import ProjectorProcess, projector_channel, projector_lock_key
from warest.infra.readmodels import LocalReadModels, ReadModels, RemoteReadModels
from warest.infra.webhooks.egress import EgressPolicy
from warest.infra.webhooks.secrets import AesSecretBox
from warest.infra.webhooks.sender import EgressUrlGuard, HttpSender
from warest.infra.webhooks.store import PgDeliveryStore, PgWebhookQueries
from warest.supervision import on_stop_signal, stop_requests, waited_popen

log = logging.getLogger("warest")




def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout_s=settings.webhook_timeout_ms / 1000,
        retries=settings.webhook_retries,
        backoff_ms=settings.webhook_backoff_ms,
        jitter_ms=settings.webhook_jitter_ms,
        parallel_targets=settings.webhook_parallel_targets,
        breaker_failures=settings.webhook_breaker_failures,
        breaker_open_s=settings.webhook_breaker_open_ms / 1000,
        cooloff_s=settings.webhook_cooloff_ms / 1000,
        max_in_flight=settings.webhook_max_in_flight,
        sha2=settings.webhook_signature_sha2,
        user_agent=f"WAREst/1 (webhook) warest/{__version__}",
    )


def dispatcher_lock_key(schema: str) -> int:
    return 0x5741_5245_0000_0000 | zlib.crc32(f"webhooks:{schema}".encode())


def queue_settings(settings: Settings) -> QueueSettings:
    return QueueSettings(
        concurrency=settings.queue_concurrency,
        max_size=settings.queue_max_size,
        policy=RetryPolicy(
            max_retries=settings.queue_max_retries,
            delay_ms=settings.queue_retry_delay_ms,
            factor=settings.queue_backoff_factor,
            jitter=settings.queue_retry_jitter,
            timeout_ms=settings.queue_timeout_ms,
        ),
    )


def neonize_store(settings: Settings, database_url: str) -> str:
    """Where neonize keeps its devices: WAREST_NEONIZE_STORE, else the configured
    PostgreSQL (one schema per session), else SQLite files under the data dir (the
    embedded server listens on a Unix socket the Go driver is not given)."""
    if settings.neonize_store:
        return settings.neonize_store
    if settings.database_url and not settings.database_embedded:
        return database_url
    return str(settings.data_path / "neonize.db")


def build_neonize(settings: Settings, database_url: str) -> Engine:
    """The real WhatsApp engine (clients are created only when a neonize session starts)."""
    with waited_popen():  # neonize runs `uname -a` at import and never waits for it
        from warest.infra.engines.neonize import NeonizeEngine  # noqa: PLC0415 (loads the Go library)

    proxies = settings.proxy_urls

    def proxy_for(session: SessionRef) -> str | None:
        if not proxies:
            return None
        return proxies[zlib.crc32(session.key.encode()) % len(proxies)]

    return NeonizeEngine(
        neonize_store(settings, database_url),
        proxy_for=proxy_for,
        suspend_after_s=settings.suspend_after_s,
        suspended_retry_s=settings.suspended_retry_s,
    )


class StartInterrupted(RuntimeError):
    """SIGTERM or SIGINT came while the server was starting: it gives the start up."""


class _Deadline:
    """One time budget for a sequence of steps (the stop): each step gets what is left,
    at least ``floor_s``, so that a stuck step never keeps the later ones from running."""

    def __init__(self, budget_s: float, floor_s: float = 0.5) -> None:
        self._end = time.monotonic() + budget_s
        self._floor_s = floor_s

    def left(self) -> float:
        return max(self._end - time.monotonic(), self._floor_s)

    async def step(self, name: str, action: Awaitable[Any]) -> bool:
        """Runs ``action``; False (logged) when it did not finish in time or failed."""
        remaining = self.left()
        try:
            await asyncio.wait_for(action, remaining)
        except TimeoutError:
            log.warning("stopping: %s did not finish in %.1f s; going on", name, remaining)
            return False
        except Exception:
            log.exception("stopping: %s failed", name)
            return False
        return True


class Container:
    """Owns every long-lived component of one server process."""

    def __init__(self, settings: Settings, *, settle_gc: bool = False, stop_on_signal: bool = False) -> None:
        """``settle_gc``: the process is a server (see ``settle_garbage_collector``); tests
        that start many apps in one process leave the collector alone. ``stop_on_signal``:
        SIGTERM or SIGINT during ``start`` gives the start up (a server process)."""
        self.settings = settings
        self._settle_gc = settle_gc
        self._stop_on_signal = stop_on_signal
        self._startup_position = 0
        self._stopping: asyncio.Future[None] | None = None
        self._stop_began = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.database = Database(settings)
        self.database_url = ""
        self.pool: asyncpg.Pool | None = None
        self.store: EventStoreApp | None = None
        self.committer: GroupCommitter | None = None
        self.async_committer: AsyncGroupCommitter | None = None
        self.read_models: ReadModels | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=settings.database_pool_size, thread_name_prefix="warest-es"
        )
        self.services: Services | None = None
        self.manager: SessionManager | None = None
        self.network: SandboxNetwork | None = None
        self._autostart: asyncio.Task[int] | None = None
        self.dispatcher: Dispatcher | None = None
        self.sender: HttpSender | None = None
        self.lease: Lease | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self.projector: ProjectorProcess | None = None

    async def start(self) -> Services:
        """Starts everything; on any failure (or a stop requested meanwhile) what was
        started is stopped again before the error goes up."""
        requests = stop_requests() if self._stop_on_signal else contextlib.nullcontext(threading.Event())
        with requests as stopping:
            starting = asyncio.create_task(self._start(), name="container-start")
            try:
                while not starting.done():
                    await asyncio.wait({starting}, timeout=0.2)
                    if stopping.is_set() and not starting.done():
                        log.warning("stop requested while starting: giving the start up")
                        starting.cancel()
                        await asyncio.gather(starting, return_exceptions=True)
                        raise StartInterrupted("stopped while starting")
                services = starting.result()
            except BaseException as error:
                if not isinstance(error, StartInterrupted | asyncio.CancelledError):
                    log.error("start-up failed: %s", error, exc_info=error)
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                await self.stop()
                raise
        if self._stop_on_signal:
            on_stop_signal(self._stop_if_stuck_draining)
        return services

    def _stop_if_stuck_draining(self) -> None:
        """After SIGTERM the HTTP server first waits for the requests and connections in
        progress (granian without any limit) and only then lets the application stop. If
        that has not begun ``WAREST_SHUTDOWN_TIMEOUT_MS`` after the signal, this stops
        everything (bounded as ever) and ends the process without those connections."""
        timeout_s = self.settings.shutdown_timeout_ms / 1000
        if self._stop_began.wait(timeout_s) or self._loop is None:
            return
        log.warning("connections still open %.1f s after the stop signal: stopping without them", timeout_s)
        stopped = asyncio.run_coroutine_threadsafe(self.stop(), self._loop)
        with contextlib.suppress(Exception):
            stopped.result(timeout_s + 1)
        logging.shutdown()
        os._exit(0)

    async def _start(self) -> Services:
        self._loop = asyncio.get_running_loop()
        self.database_url = await asyncio.to_thread(self.database.start)
        async with self.database.startup():
            return await self._start_locked()

    async def _start_locked(self) -> Services:
        settings = self.settings
        await asyncio.to_thread(self.database.migrate)
        self.store = await asyncio.to_thread(build_store, settings, self.database_url)
        self.read_models = self._read_models(settings, self.store)
        if settings.group_commit:
            self.async_committer = AsyncGroupCommitter(
                self.store,
                self.database_url,
                settings.database_schema,
                window_s=settings.group_commit_window_ms / 1000,
            )
            self.async_committer.add_listener(self.read_models.nudge)
            await self.async_committer.start()
        else:
            self.committer = GroupCommitter(self.store, enabled=False)
            self.committer.add_listener(self.read_models.nudge)
            self.committer.start()
        await asyncio.to_thread(self.read_models.start, asyncio.get_running_loop())
        if self.projector is not None:
            self.projector.start()
        if settings.projector != "inline":
            await self._caught_up(self.read_models)
        self.pool = await create_pool(settings, self.database_url)
        writer = self.async_committer or self.committer
        assert writer is not None
        event_store = AsyncEventStore(self.store, writer, self.executor)
        queries = PgRegistryQueries(self.pool)
        pepper = await load_settings_pepper(settings)
        users = build_users(settings, event_store, self.pool, self.read_models, pepper)
        await seed_admin(settings, users)
        engines = await self._engines(settings)
        messaging_queries = PgMessagingQueries(self.pool)
        self.manager = SessionManager(
            engines,
            event_store,
            messaging_queries,
            queue_settings(settings),
            LifecycleSettings(suspend_after_s=settings.suspend_after_s),
            PgLoginQrs(self.pool),
        )
        sessions = SessionService(event_store, queries, self.read_models, self.manager, settings.engine)
        messaging = MessagingService(
            event_store,
            self.manager,
            settings.send_wait_ms / 1000,
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
            clock=SystemClock(),
        )
        actions = ActionService(event_store, sessions, self.manager)
        webhooks = self._webhooks(settings, event_store, sessions, messaging, actions, pepper)
        self.services = Services(
            settings=settings,
            version=__version__,
            users=users,
            sessions=sessions,
            messaging=messaging,
            sandbox=self.network,
            waiter=self.read_models,
            health=self.health,
            history=EventHistory(PgEventHistory(self.pool, self.store.mapper), self.read_models),
            reads=ReadService(PgReadQueries(self.pool), sessions, self.read_models),
            actions=actions,
            webhooks=webhooks,
            parked=self._parked_events(settings, self.store, self.read_models),
        )
        self._autostart = asyncio.create_task(self.manager.start_autostart(), name="autostart")
        if self._settle_gc:
            settle_garbage_collector()
        return self.services

    def _read_models(self, settings: Settings, store: EventStoreApp) -> ReadModels:
        """In this process (``inline``), or followed from a projector: this worker's child
        (``process``) or one run elsewhere (``external``)."""
        schema = settings.database_schema
        if settings.projector == "inline":
            return LocalReadModels(
                build_runners(store, settings, self.database_url, with_outbox=True), store.max_position
            )
        if settings.projector == "process":
            env = {"WAREST_DATABASE_URL": self.database_url}
            if self.database.embedded is not None or settings.database_embedded:
                env["WAREST_DATABASE_EMBEDDED"] = "true"
            self.projector = ProjectorProcess(env)
        return RemoteReadModels(
            server_read_model_names(settings),
            store.max_position,
            self.database_url,
            schema,
            projector_channel(schema),
            projector_lock_key(schema),
        )

    def _parked_events(
        self, settings: Settings, store: EventStoreApp, read_models: ReadModels
    ) -> PgParkedEvents:
        url = self.database_url
        return PgParkedEvents(
            read_models,
            server_read_model_names(settings),
            lambda: build_runners(store, settings, url, with_outbox=True),
            url,
            settings.database_schema,
        )

    async def _caught_up(self, read_models: ReadModels) -> None:
        """Serves once the projector has caught up with the log as it was at startup, or
        after ``WAREST_STARTUP_WAIT_MS`` without it: then it serves anyway, and /ready
        answers 503 (projections false) until the read models have reached that point."""
        assert self.store is not None
        latest = await asyncio.to_thread(self.store.max_position)
        self._startup_position = latest
        deadline = time.monotonic() + self.settings.startup_wait_ms / 1000
        if read_models.position < latest:
            log.info(
                "waiting for the projector to catch up: read models at %d of %d", read_models.position, latest
            )
        while not await read_models.wait(latest, timeout=max(min(15.0, deadline - time.monotonic()), 0.0)):
            state = "" if self.projector is None or self.projector.alive() else " (projector not running)"
            if time.monotonic() >= deadline:
                log.error(
                    "the projector has not caught up in %.0f s (read models at %d of %d%s): serving"
                    " anyway; /ready answers 503 until it has",
                    self.settings.startup_wait_ms / 1000,
                    read_models.position,
                    latest,
                    state,
                )
                return
            log.warning(
                "waiting for the projector to catch up: read models at %d of %d%s",
                read_models.position,
                latest,
                state,
            )

    def _webhooks(
        self,
        settings: Settings,
        event_store: AsyncEventStore,
        sessions: SessionService,
        messaging: MessagingService,
        actions: ActionService,
        pepper: bytes,
    ) -> WebhookService | None:
        """The webhook service and, once this process holds the dispatcher lease, the dispatcher."""
        if not settings.webhooks_enabled:
            return None
        assert self.pool is not None and self.read_models is not None
        secrets = AesSecretBox(pepper)
        policy = EgressPolicy(
            allow_private=settings.webhook_allow_private,
            allow=settings.webhook_allow,
            https_only=settings.webhook_https_only,
        )
        self.sender = HttpSender(policy, connections_per_origin=settings.webhook_connections)
        default = (
            Target(
                DEFAULT_WEBHOOK_ENDPOINT,
                settings.webhook_default_url,
                (settings.webhook_default_secret,),
                True,
            )
            if settings.webhook_default_url
            else None
        )
        self.dispatcher = Dispatcher(
            PgDeliveryStore(self.pool, secrets),
            self.sender,
            DeliveryDisabler(event_store),
            delivery_policy(settings),
            default=default,
            actions=WebhookActions(
                messaging,
                actions,
                sessions,
                default_country_code=settings.default_country_code,
                default_delay_ms=settings.webhook_actions_delay_ms,
            ),
        )
        self.read_models.follow(OutboxProjection.name, lambda _position: self._wake_dispatcher())
        self.lease = Lease(
            AdvisoryLock(self.database_url, dispatcher_lock_key(settings.database_schema)),
            self._start_dispatcher,
            self.dispatcher.stop,
            name="webhook dispatcher",
        )
        self._lease_task = asyncio.create_task(self.lease.run(), name="webhook-lease")
        return WebhookService(
            event_store,
            self.read_models,
            sessions,
            PgWebhookQueries(self.pool),
            secrets,
            EgressUrlGuard(policy),
            self.sender,
            rotation_grace_s=settings.webhook_rotation_grace_s,
            preflight_timeout_s=settings.webhook_preflight_timeout_ms / 1000,
            sha2=settings.webhook_signature_sha2,
            rescan=self._rescan_dispatcher,
        )

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None and self.lease is not None and self.lease.held:
            self.dispatcher.wake()

    def _rescan_dispatcher(self) -> None:
        if self.dispatcher is not None and self.lease is not None and self.lease.held:
            self.dispatcher.rescan()

    async def _start_dispatcher(self) -> None:
        """One dispatcher per database schema: the process holding the lease delivers."""
        assert self.dispatcher is not None
        await self.dispatcher.start()
        self.dispatcher.wake()

    async def _engines(self, settings: Settings) -> dict[str, Engine]:
        assert self.pool is not None
        engines: dict[str, Engine] = {}
        if settings.sandbox_enabled:
            self.network = SandboxNetwork(
                SandboxStore(self.pool),
                qr_duration_s=settings.qr_duration_s,
                qr_max_rotations=settings.qr_max_rotations,
                default_country_code=settings.default_country_code,
            )
            await self.network.load()
            engines["sandbox"] = SandboxEngine(self.network)
        engines["neonize"] = build_neonize(settings, self.database_url)
        return engines

    async def health(self) -> dict[str, bool]:
        pool_ok = self.pool is not None and await database_ok(self.pool)
        runners_ok = (
            self.read_models is not None
            and self.read_models.healthy()
            and self.read_models.position >= self._startup_position
        )
        return {"database": pool_ok, "projections": runners_ok}

    async def stop(self) -> None:
        """Stops everything within ``WAREST_SHUTDOWN_TIMEOUT_MS``: a step that does not
        finish in what is left of it is abandoned (logged), and the next one runs. Callers
        after the first wait for the same stop."""
        self._stop_began.set()
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        deadline = _Deadline(self.settings.shutdown_timeout_ms / 1000)
        for task in (self._autostart, self._lease_task):
            if task is not None:  # the lease task stops the dispatcher and gives the lease up
                task.cancel()
                await deadline.step(task.get_name(), asyncio.gather(task, return_exceptions=True))
        if self.sender is not None:
            await deadline.step("webhook sender", self.sender.close())
        if self.manager is not None:
            await deadline.step("sessions", self.manager.close())
        if self.network is not None:
            await deadline.step("sandbox network", self.network.close())
        if self.projector is not None:
            await self.projector.stop(deadline.left())  # SIGTERM, then SIGKILL
        if self.read_models is not None:
            await deadline.step("read models", asyncio.to_thread(self.read_models.stop))
        if self.async_committer is not None:
            await deadline.step("group committer", self.async_committer.stop())
        if self.committer is not None:
            await deadline.step("committer", asyncio.to_thread(self.committer.stop))
        if self.pool is not None and not await deadline.step("database pool", self.pool.close()):
            self.pool.terminate()  # connections still in use: closed under their users
        if self.store is not None:
            self.store.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.database.embedded is not None:
            await asyncio.to_thread(self.database.stop)
