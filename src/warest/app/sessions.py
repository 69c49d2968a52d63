"""WhatsApp sessions as their owners see them: always scoped to the caller's registry.

A session of another tenant is indistinguishable from a missing one (NotFound), and two
tenants may both name a session "main": ids are derived from (registry, session id).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from warest.app.commands import retry_on_conflict
from warest.app.engine import Device
from warest.app.errors import Unavailable
from warest.app.manager import SessionManager
from warest.app.ports import ConcurrencyConflict, EventStore, ReadModelWaiter, RegistryQueries
from warest.app.records import Principal, SessionRecord
from warest.app.runtime import QrCode, SessionRuntime
from warest.domain import ids, values
from warest.domain.errors import AlreadyExists, InvalidValue, SessionNotFound
from warest.domain.sessions import Session, Status

ENGINES = ("neonize", "sandbox")
QR_WAIT_S = 2.5
PAIR_WAIT_S = 3.5


RECENT_S = 1.0
RECENT_MAX = 10_000


@dataclass(frozen=True)
class LoginState:
    """What a create or pair call can tell the caller right away."""

    record: SessionRecord
    created: bool
    status: str
    qr: QrCode | None = None
    pairing_code: str | None = None


class SessionService:
    def __init__(
        self,
        store: EventStore,
        queries: RegistryQueries,
        waiter: ReadModelWaiter,
        manager: SessionManager,
        default_engine: str,
    ) -> None:
        self._store = store
        self._queries = queries
        self._waiter = waiter
        self._manager = manager
        self.default_engine = default_engine
        self._recent: dict[tuple[str, str], tuple[float, SessionRecord]] = {}
        self._on_delete: list[Callable[[SessionRecord], Awaitable[None]]] = []

    def when_deleted(self, cleanup: Callable[[SessionRecord], Awaitable[None]]) -> None:
        """``cleanup(record)`` runs when a session is deleted, before its ``Deleted`` is
        recorded (e.g. its webhook endpoints are removed)."""
        self._on_delete.append(cleanup)

    # -- registry -----------------------------------------------------------------

    async def ensure(
        self,
        owner: Principal,
        name: str,
        *,
        label: str | None = None,
        auto_start: bool = True,
        engine: str | None = None,
    ) -> tuple[SessionRecord, bool]:
        """Creates the session if needed; returns (record, created_now)."""
        name = values.session_name(name)
        engine = engine or self.default_engine
        if engine not in ENGINES:
            raise InvalidValue("engine", f"must be one of {', '.join(ENGINES)}")
        existing = await self._queries.session(owner.registry, name)
        if existing is not None:
            return existing, False

        async def command() -> int:
            session: Session | None = await self._store.get(ids.session_id(owner.registry, name))
            if session is None:
                session = Session.create(owner.registry, name, label, auto_start, engine)
            else:
                session.recreate(label, auto_start, engine)
            return await self._store.save(session)

        try:
            position = await retry_on_conflict(command)
        except (AlreadyExists, ConcurrencyConflict):
            # Someone else created it at the same moment: show theirs once it is projected.
            position = 0
            await self._waiter.wait_latest()
        await self._settle(position)
        record = await self._queries.session(owner.registry, name)
        if record is None:
            raise Unavailable("the registry read model is behind; try again")
        return record, position > 0

    async def get(self, owner: Principal, name: str) -> SessionRecord:
        name = values.session_name(name)
        record = await self._queries.session(owner.registry, name)
        if record is None:
            raise SessionNotFound(f"session '{name}' not found")
        return record

    async def recent(self, owner: Principal, name: str) -> SessionRecord:
        """``get`` for the hot paths (sends, message actions): a record read at most
        ``RECENT_S`` ago. They rely only on what never changes (the session exists and is the
        caller's); whether it may send is the runtime's live status. A delete made here is
        seen at once, one made by another process within ``RECENT_S``."""
        key = (owner.registry, values.session_name(name))
        now = time.monotonic()
        hit = self._recent.get(key)
        if hit is not None and now - hit[0] < RECENT_S:
            return hit[1]
        record = await self.get(owner, name)
        if len(self._recent) >= RECENT_MAX:
            self._recent.clear()
        self._recent[key] = (now, record)
        return record

    async def owned(self, owner: Principal) -> list[SessionRecord]:
        return await self._queries.sessions(owner.registry)

    async def list_registry(self, registry: str) -> list[SessionRecord]:
        """Every session of one registry: for admin routes only."""
        return await self._queries.sessions(registry)

    async def configure(
        self,
        owner: Principal,
        name: str,
        *,
        label: str | None = None,
        auto_start: bool | None = None,
    ) -> SessionRecord:
        await self.get(owner, name)

        async def command() -> int:
            session = await self._load(owner, name)
            session.configure(label=label, auto_start=auto_start)
            return await self._store.save(session)

        await self._settle(await retry_on_conflict(command))
        return await self.get(owner, name)

    # -- lifecycle ------------------------------------------------------------------

    async def login(
        self,
        owner: Principal,
        name: str,
        *,
        pair_phone: str | None = None,
        label: str | None = None,
        auto_start: bool = True,
        engine: str | None = None,
    ) -> LoginState:
        """Creates the session if needed and starts its login (QR, or pairing code)."""
        self._manager.require_engine(engine or self.default_engine)
        record, created = await self.ensure(owner, name, label=label, auto_start=auto_start, engine=engine)
        runtime = self._manager.get(record.registry, record.session_id)
        if runtime is not None and runtime.status == Status.OPEN:
            return LoginState(record, created, Status.OPEN)
        if runtime is None or pair_phone is not None or runtime.status in _RESTARTABLE:
            runtime = await self._manager.start(record, pair_phone)
        if pair_phone is not None:
            await runtime.wait_until(
                lambda r: r.current_pairing_code is not None or r.status == Status.OPEN, PAIR_WAIT_S
            )
        else:
            await runtime.wait_until(lambda r: r.current_qr is not None or r.status == Status.OPEN, QR_WAIT_S)
        return LoginState(
            await self.get(owner, name),
            created,
            str(runtime.status or record.status),
            runtime.current_qr,
            runtime.current_pairing_code,
        )

    async def logout(self, owner: Principal, name: str) -> None:
        record = await self.get(owner, name)
        runtime = self._manager.runtime(record)
        await runtime.logout()

    async def reconnect(self, owner: Principal, name: str) -> None:
        record = await self.get(owner, name)
        runtime = self._manager.runtime(record)
        await runtime.connection.stop()
        await runtime.start()

    async def delete(self, owner: Principal, name: str) -> None:
        record = await self.get(owner, name)
        self._recent.pop((record.registry, record.session_id), None)
        await self._manager.discard(record.registry, record.session_id)
        for cleanup in self._on_delete:
            await cleanup(record)

        async def command() -> int:
            session = await self._load(owner, name)
            session.delete()
            return await self._store.save(session)

        await self._settle(await retry_on_conflict(command))

    async def device(self, owner: Principal, name: str) -> tuple[SessionRecord, Device | None]:
        record = await self.get(owner, name)
        runtime = self._manager.get(record.registry, record.session_id)
        return record, (await runtime.connection.device() if runtime else None)

    def runtime(self, record: SessionRecord) -> SessionRuntime | None:
        return self._manager.get(record.registry, record.session_id)

    # -- helpers --------------------------------------------------------------------

    async def _load(self, owner: Principal, name: str) -> Session:
        session: Session | None = await self._store.get(ids.session_id(owner.registry, name))
        if session is None or session.deleted:
            raise SessionNotFound(f"session '{name}' not found")
        return session

    async def _settle(self, position: int) -> None:
        if position and not await self._waiter.wait(position):
            raise Unavailable("the registry read model is behind; try again")


_RESTARTABLE = {None, Status.CREATED, Status.CLOSED, Status.LOGGED_OUT, Status.REPLACED, Status.BANNED}
