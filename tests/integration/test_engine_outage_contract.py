"""Both engines, one contract: an outage is a few state transitions in the log, however
many reconnect attempts the engine makes. The same scenario runs against the sandbox and
against neonize (its recording stand-in client, whose restarts fail while WhatsApp is
unreachable), each behind a real ``SessionRuntime``; the lifecycle events each records
must be the same sequence: the loss once (with its reason), ``Suspended`` once if the
outage outlasts the threshold, ``Opened`` once when the link is back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from neonize.proto import Neonize_pb2 as ev

from tests.fakes import FakeMessagingQueries, InMemoryEventStore
from tests.integration.test_neonize_engine import Factory, StandInClient, eventually
from tests.unit.test_sandbox_settle import MemoryStore as SandboxMemoryStore
from warest.app.engine import SessionRef
from warest.app.runtime import LifecycleSettings, QueueSettings, SessionRuntime
from warest.domain.sessions import LIFECYCLE_EVENTS, Session, Status
from warest.infra.engines.neonize import NeonizeEngine
from warest.infra.engines.sandbox.engine import SandboxEngine
from warest.infra.engines.sandbox.network import SandboxNetwork

REGISTRY, NAME = "REG", "main"


@dataclass
class Rig:
    store: InMemoryEventStore
    runtime: SessionRuntime
    outage: Callable[[float], Awaitable[None]]
    """Takes the link down for about that many seconds; returns once it is open again."""
    close: Callable[[], Awaitable[None]]


def new_runtime(engine: Any, store: InMemoryEventStore, suspend_after_s: float) -> SessionRuntime:
    session = Session.create(REGISTRY, NAME, None, True, engine.name)
    store.put(session)
    settings = LifecycleSettings(suspend_after_s=suspend_after_s, store_retry_base_s=0.01)
    return SessionRuntime(
        SessionRef(REGISTRY, NAME),
        engine,
        store,
        FakeMessagingQueries(store),
        QueueSettings(),
        lambda _r: None,
        settings,
    )


def is_open(runtime: SessionRuntime) -> bool:
    return runtime.status == Status.OPEN


async def sandbox_rig(_tmp: Path, suspend_after_s: float) -> Rig:
    network = SandboxNetwork(SandboxMemoryStore())  # type: ignore[arg-type]
    engine = SandboxEngine(network)
    store = InMemoryEventStore()
    runtime = new_runtime(engine, store, suspend_after_s)
    await runtime.start()
    await network.scan(REGISTRY, NAME, "6281000000001")
    await eventually(lambda: is_open(runtime))

    async def outage(seconds: float) -> None:
        connection = network.connections[(REGISTRY, NAME)]
        await connection.inject("disconnect", {"reconnectAfterMs": seconds * 1000})
        await eventually(lambda: runtime.status != Status.OPEN)
        await eventually(lambda: is_open(runtime), timeout=seconds + 5)

    async def close() -> None:
        await runtime.queue.close()
        await engine.close()
        await network.close()

    return Rig(store, runtime, outage, close)


class UnreachableFactory(Factory):
    """Clients whose Go thread fails at once while ``down`` (WhatsApp unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __call__(self, database: str, client_id: str) -> StandInClient:
        client = super().__call__(database, client_id)
        if self.down:
            client.crash.set_result("failed to dial whatsapp web websocket: network is unreachable")
        return client


async def neonize_rig(tmp: Path, suspend_after_s: float) -> Rig:
    factory = UnreachableFactory()
    engine = NeonizeEngine(
        str(tmp / "neonize.db"),
        client_factory=factory,
        reconnect_base_s=0.01,
        reconnect_max_s=0.02,
        suspend_after_s=suspend_after_s,
        suspended_retry_s=0.02,
    )
    store = InMemoryEventStore()
    runtime = new_runtime(engine, store, suspend_after_s)
    await runtime.start()
    await factory.last.emit(ev.Connected(status=True))
    await eventually(lambda: is_open(runtime))

    async def outage(seconds: float) -> None:
        factory.down = True
        clients_before = len(factory.clients)
        factory.last.crash.set_result("failed to dial whatsapp web websocket: network is unreachable")
        await eventually(lambda: len(factory.clients) >= clients_before + 3)  # restarts keep failing
        await asyncio.sleep(seconds)
        factory.down = False
        restarted = len(factory.clients)
        await eventually(lambda: len(factory.clients) > restarted)  # the next restart reaches WhatsApp
        await factory.last.emit(ev.Connected(status=True))
        await eventually(lambda: is_open(runtime))

    async def close() -> None:
        await runtime.queue.close()
        await engine.close()

    return Rig(store, runtime, outage, close)


ENGINES = {"sandbox": sandbox_rig, "neonize": neonize_rig}


@pytest.fixture(params=sorted(ENGINES))
def make_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[float], Awaitable[Rig]]:
    async def make(suspend_after_s: float) -> Rig:
        return await ENGINES[request.param](tmp_path, suspend_after_s)

    return make


async def test_a_short_outage_is_one_loss_and_one_reopening(make_rig: Any) -> None:
    rig: Rig = await make_rig(30.0)
    try:
        before = len(rig.store.names(LIFECYCLE_EVENTS))
        attempts: list[int] = []

        async def watch() -> None:
            while True:
                if rig.runtime.outage is not None:
                    attempts.append(rig.runtime.outage.attempts)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await rig.outage(0.3)
        watcher.cancel()
        assert rig.store.names(LIFECYCLE_EVENTS)[before:] == ["ConnectionLost", "Opened"]
        lost = [e for e in rig.store.all_events() if isinstance(e, Session.ConnectionLost)]
        assert len(lost) == 1 and lost[0].attempt == 1 and lost[0].reason
        assert attempts  # the outage was live status while it lasted...
        assert rig.runtime.outage is None  # ...and is gone once open
    finally:
        await rig.close()


async def test_a_long_outage_is_suspended_once(make_rig: Any) -> None:
    rig: Rig = await make_rig(0.2)
    try:
        before = len(rig.store.names(LIFECYCLE_EVENTS))
        await rig.outage(0.6)
        assert rig.store.names(LIFECYCLE_EVENTS)[before:] == ["ConnectionLost", "Suspended", "Opened"]
        suspended = next(e for e in rig.store.all_events() if isinstance(e, Session.Suspended))
        lost = next(e for e in rig.store.all_events() if isinstance(e, Session.ConnectionLost))
        assert suspended.reason == lost.reason
    finally:
        await rig.close()


async def test_many_failed_neonize_attempts_record_one_loss(tmp_path: Path) -> None:
    """The defect: every back-off step of a session that could not reach WhatsApp was a
    ``Session.ConnectionLost`` (and a webhook)."""
    rig = await neonize_rig(tmp_path, 30.0)
    try:
        before = len(rig.store.names(LIFECYCLE_EVENTS))
        await rig.outage(0.3)
        assert rig.store.names(LIFECYCLE_EVENTS)[before:] == ["ConnectionLost", "Opened"]
    finally:
        await rig.close()
