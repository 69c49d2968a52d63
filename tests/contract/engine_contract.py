"""The engine contract: what every engine does, whatever WhatsApp it talks to.

``EngineContract`` holds the tests; a subclass per engine supplies ``make_harness``: the
engine, and a stand-in for WhatsApp's side of it (the sandbox network itself, or neonize's
recording client answering with real neonize protobufs). The tests drive the engine only
through the port (``Engine.connection``, the ``Connection`` capabilities) and judge it only
by the happenings its listener hears, so each one holds for every engine.

Two tests put a real ``SessionRuntime`` behind the engine: an outage is a few transitions
in the log, ``ConnectionLost`` once, ``Suspended`` once if it lasts, ``Opened`` once,
however many reconnect attempts the engine makes.
"""

from __future__ import annotations

import asyncio
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from tests.fakes import FakeMessagingQueries, InMemoryEventStore
from warest.app.engine import Connection, Engine, OutboundText, SessionRef
from warest.app.happenings import (
    Connecting,
    Happening,
    LoggedOut,
    Opened,
    QrShown,
    Receipt,
    Received,
    Reconnecting,
)
from warest.app.runtime import LifecycleSettings, QueueSettings, SessionRuntime
from warest.domain.sessions import LIFECYCLE_EVENTS, Session, Status

SESSION = SessionRef("REG", "main")
H = TypeVar("H", bound=Happening)


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


class Heard:
    """A listener that keeps every happening, in order."""

    def __init__(self) -> None:
        self.happenings: list[Happening] = []

    async def on(self, happening: Happening) -> None:
        self.happenings.append(happening)

    def of(self, kind: type[H]) -> list[H]:
        return [h for h in self.happenings if isinstance(h, kind)]

    async def first(self, kind: type[H], where: Callable[[H], bool] = lambda _h: True) -> H:
        """The first ``kind`` happening that satisfies ``where``, once one has arrived."""
        await eventually(lambda: any(where(h) for h in self.of(kind)))
        return next(h for h in self.of(kind) if where(h))


class Harness(ABC):
    """One engine and WhatsApp's side of it, for one session (``SESSION``)."""

    engine: Engine
    phone: str
    """The phone number (digits) of the account the session logs in as."""
    peer: str
    """The JID of another account, which this one talks to."""

    @abstractmethod
    async def offer_qr(self) -> None:
        """WhatsApp answers a started, unlinked device with a QR code."""

    @abstractmethod
    async def link(self) -> None:
        """The phone links the device (it scans the QR); the session logs in."""

    @abstractmethod
    async def log_in_again(self) -> None:
        """A started device that is linked already logs in (no QR)."""

    @abstractmethod
    async def receive_text(self, text: str) -> None:
        """``peer`` sends this account ``text``."""

    @abstractmethod
    async def confirm_delivery(self, wa_id: str) -> None:
        """``peer``'s phone got the message ``wa_id`` this account sent it."""

    @abstractmethod
    async def outage(self, seconds: float) -> None:
        """WhatsApp is unreachable for about ``seconds``; returns once the link is back."""

    @abstractmethod
    async def log_out_from_phone(self) -> None:
        """The device is unlinked from the phone."""

    @abstractmethod
    async def close(self) -> None: ...


class EngineContract(ABC):
    """The tests every engine passes. Subclasses name a harness maker."""

    suspend_after_s: ClassVar[float] = 30.0

    @abstractmethod
    async def make_harness(self, tmp_path: Path, suspend_after_s: float) -> Harness: ...

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[Harness]:
        harness = await self.make_harness(tmp_path, self.suspend_after_s)
        yield harness
        await harness.close()

    @pytest.fixture
    def heard(self) -> Heard:
        return Heard()

    @pytest.fixture
    async def connection(self, harness: Harness, heard: Heard) -> Connection:
        return harness.engine.connection(SESSION, heard)  # on the loop: engines start tasks

    async def open(self, harness: Harness, heard: Heard, connection: Connection) -> Opened:
        await connection.start()
        await harness.offer_qr()
        await heard.first(QrShown)  # the phone scans the code it was shown
        await harness.link()
        opened = await heard.first(Opened)
        await eventually(lambda: connection.connected)
        return opened

    # -- logging in ----------------------------------------------------------------------------

    async def test_an_unlinked_device_is_offered_a_qr(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await connection.start()
        await harness.offer_qr()
        qr = await heard.first(QrShown)
        assert qr.qr and qr.duration_s > 0 and qr.attempt == 1
        assert qr.qr not in repr(qr)  # a login code stays out of logs
        assert not heard.of(Opened) and not connection.connected

    async def test_linking_opens_the_session_as_its_account(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        opened = await self.open(harness, heard, connection)
        assert opened.me.jid.split("@")[0].split(":")[0] == harness.phone
        assert opened.me.jid.endswith("@s.whatsapp.net")
        first_qr = heard.happenings.index(heard.of(QrShown)[0])
        assert heard.happenings.index(opened) > first_qr  # in the order they happened

    async def test_a_stopped_session_starts_again_without_a_qr(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        await connection.stop()
        assert not connection.connected
        qrs = len(heard.of(QrShown))
        await connection.start()
        await harness.log_in_again()
        await eventually(lambda: len(heard.of(Opened)) == 2)
        assert len(heard.of(QrShown)) == qrs and connection.connected

    async def test_logout_forgets_the_device(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        await connection.logout()
        assert not connection.connected
        await connection.start()
        await harness.offer_qr()
        await eventually(lambda: len(heard.of(QrShown)) == 2)  # it must be linked again

    async def test_a_logout_from_the_phone_ends_the_link(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        await harness.log_out_from_phone()
        assert (await heard.first(LoggedOut)).reason
        await eventually(lambda: not connection.connected)

    # -- messages ------------------------------------------------------------------------------

    async def test_a_sent_text_has_the_id_whatsapp_knows_it_by(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        result = await connection.send_text(OutboundText(harness.peer, new_wa_id(), "hello"))
        assert result.wa_id and isinstance(result.sent_at, datetime)

    async def test_an_inbound_text_is_received_with_its_chat_sender_and_text(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        await harness.receive_text("halo dari sana")
        received = await heard.first(Received)
        assert (received.chat, received.sender) == (harness.peer, harness.peer)
        assert received.text == "halo dari sana"
        assert received.wa_id and received.kind == "text" and not received.from_me

    async def test_a_delivery_receipt_names_the_message_sent(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        result = await connection.send_text(OutboundText(harness.peer, new_wa_id(), "hello"))
        await harness.confirm_delivery(result.wa_id)
        receipt = await heard.first(Receipt, lambda r: r.status == "delivered")
        assert result.wa_id in receipt.wa_ids and receipt.chat == harness.peer

    # -- outages -------------------------------------------------------------------------------

    async def test_an_outage_is_reported_at_each_attempt_then_the_link_reopens(
        self, harness: Harness, heard: Heard, connection: Connection
    ) -> None:
        await self.open(harness, heard, connection)
        before = len(heard.happenings)
        await harness.outage(0.2)
        await eventually(lambda: len(heard.of(Opened)) == 2)
        during = heard.happenings[before:]
        assert isinstance(during[0], Reconnecting) and during[0].attempt == 1 and during[0].reason
        assert isinstance(during[-1], Opened) and connection.connected
        assert all(isinstance(h, Reconnecting | Connecting) for h in during[1:-1])
        attempts = [h.attempt for h in during if isinstance(h, Reconnecting)]
        assert attempts == list(range(1, len(attempts) + 1))

    async def test_a_short_outage_is_one_loss_and_one_reopening_in_the_log(self, tmp_path: Path) -> None:
        harness = await self.make_harness(tmp_path, 30.0)
        store, runtime = runtime_rig(harness.engine)
        try:
            await self.open_runtime(harness, runtime)
            before = len(store.names(LIFECYCLE_EVENTS))
            attempts: list[int] = []

            async def watch() -> None:
                while True:
                    if runtime.outage is not None:
                        attempts.append(runtime.outage.attempts)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            await harness.outage(0.3)
            await eventually(lambda: runtime.status == Status.OPEN)
            watcher.cancel()
            assert store.names(LIFECYCLE_EVENTS)[before:] == ["ConnectionLost", "Opened"]
            lost = [e for e in events(store) if isinstance(e, Session.ConnectionLost)]
            assert len(lost) == 1 and lost[0].attempt == 1 and lost[0].reason
            assert attempts  # the outage was live status while it lasted...
            assert runtime.outage is None  # ...and is gone once open
        finally:
            await runtime.queue.close()
            await harness.close()

    async def test_a_long_outage_is_suspended_once(self, tmp_path: Path) -> None:
        harness = await self.make_harness(tmp_path, 0.2)
        store, runtime = runtime_rig(harness.engine, suspend_after_s=0.2)
        try:
            await self.open_runtime(harness, runtime)
            before = len(store.names(LIFECYCLE_EVENTS))
            await harness.outage(0.6)
            await eventually(lambda: runtime.status == Status.OPEN)
            assert store.names(LIFECYCLE_EVENTS)[before:] == ["ConnectionLost", "Suspended", "Opened"]
            suspended = next(e for e in events(store) if isinstance(e, Session.Suspended))
            lost = next(e for e in events(store) if isinstance(e, Session.ConnectionLost))
            assert suspended.reason == lost.reason
        finally:
            await runtime.queue.close()
            await harness.close()

    async def open_runtime(self, harness: Harness, runtime: SessionRuntime) -> None:
        await runtime.start()
        await harness.offer_qr()
        await eventually(lambda: runtime.current_qr is not None)
        await harness.link()
        await eventually(lambda: runtime.status == Status.OPEN)


def new_wa_id() -> str:
    return "3EB0" + secrets.token_hex(9).upper()


def runtime_rig(engine: Engine, suspend_after_s: float = 30.0) -> tuple[InMemoryEventStore, SessionRuntime]:
    """A ``SessionRuntime`` of ``SESSION`` on ``engine``, over an event store in memory."""
    store = InMemoryEventStore()
    store.put(Session.create(SESSION.registry, SESSION.name, None, True, engine.name))
    settings = LifecycleSettings(suspend_after_s=suspend_after_s, store_retry_base_s=0.01)
    queries = FakeMessagingQueries(store)
    runtime = SessionRuntime(SESSION, engine, store, queries, QueueSettings(), lambda _r: None, settings)
    return store, runtime


def events(store: InMemoryEventStore) -> list[Any]:
    return store.all_events()

