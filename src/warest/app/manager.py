"""All running sessions of this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from warest.app.engine import Engine, EngineError, SessionRef
from warest.app.ports import ConcurrencyConflict, EventStore, LoginQrs, MessagingQueries
from warest.app.records import SessionRecord
from warest.app.runtime import LifecycleSettings, QueueSettings, SessionRuntime
from warest.domain import ids
from warest.domain.sessions import Session

log = logging.getLogger("warest.sessions")


class EngineUnavailable(Exception):
    """The session's engine is not configured in this process."""


class SessionManager:
    def __init__(
        self,
        engines: Mapping[str, Engine],
        store: EventStore,
        queries: MessagingQueries,
        queue_settings: QueueSettings,
        lifecycle: LifecycleSettings | None = None,
        login_qrs: LoginQrs | None = None,
    ) -> None:
        self.engines = dict(engines)
        self._lifecycle = lifecycle
        self._login_qrs = login_qrs
        self._store = store
        self._queries = queries
        self._queue_settings = queue_settings
        self._runtimes: dict[str, SessionRuntime] = {}

    def require_engine(self, name: str) -> None:
        if name not in self.engines:
            raise EngineUnavailable(f"engine '{name}' is not enabled on this server")

    def get(self, registry: str, name: str) -> SessionRuntime | None:
        return self._runtimes.get(SessionRef(registry, name).key)

    def runtime(self, record: SessionRecord) -> SessionRuntime:
        ref = SessionRef(record.registry, record.session_id)
        runtime = self._runtimes.get(ref.key)
        if runtime is None:
            engine = self.engines.get(record.engine)
            if engine is None:
                raise EngineUnavailable(f"engine '{record.engine}' is not enabled on this server")
            runtime = SessionRuntime(
                ref,
                engine,
                self._store,
                self._queries,
                self._queue_settings,
                self._closed,
                self._lifecycle,
                login_qrs=self._login_qrs,
            )
            self._runtimes[ref.key] = runtime
        return runtime

    async def start(self, record: SessionRecord, pair_phone: str | None = None) -> SessionRuntime:
        runtime = self.runtime(record)
        await runtime.start(pair_phone)
        return runtime

    async def discard(self, registry: str, name: str) -> None:
        """Stops and forgets the runtime (the session was deleted)."""
        runtime = self._runtimes.pop(SessionRef(registry, name).key, None)
        if runtime is not None:
            await runtime.shutdown()
            await runtime.fail_pending("the session was deleted")
            await runtime.engine.forget(runtime.ref)

    async def start_autostart(self) -> int:
        """Starts every auto-start session that was not stopped or logged out."""
        started = 0
        for record in await self._queries.autostart_sessions():
            try:
                await self.start(record)
                started += 1
            except EngineUnavailable as error:
                log.warning("session %s/%s did not start: %s", record.registry, record.session_id, error)
                await self._record_unavailable(record, str(error))
            except EngineError as error:
                log.warning("session %s/%s did not start: %s", record.registry, record.session_id, error)
        return started

    async def _record_unavailable(self, record: SessionRecord, reason: str) -> None:
        """The registry must not go on showing the status of the last run (``open``, say)
        for a session nothing runs: it shows ``unavailable`` and why."""
        session: Session | None = await self._store.get(ids.session_id(record.registry, record.session_id))
        if session is None or session.deleted or not session.unavailable(reason):
            return
        with contextlib.suppress(ConcurrencyConflict):  # changed meanwhile: that state wins
            await self._store.save(session)

    async def close(self) -> None:
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        await asyncio.gather(*(r.shutdown() for r in runtimes), return_exceptions=True)
        for engine in self.engines.values():
            await engine.close()

    def _closed(self, runtime: SessionRuntime) -> None:
        """A session ended for good (logged out, replaced): it stays known but idle."""
        log.info("session %s ended (%s)", runtime.ref.key, runtime.status)
