"""Message actions tell WhatsApp once and record what they did: a version conflict on the save
(receipts land on the same message stream while the engine call is in flight) re-applies the
change to the reloaded message, it never sends the edit, reaction or revoke a second time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.fakes import InMemoryEventStore
from warest.app.actions import ActionService, EngineRefused
from warest.app.engine import EngineError, MessageRef, Receipt, SessionRef
from warest.app.manager import SessionManager
from warest.app.records import Principal, SessionRecord
from warest.app.runtime import QueueSettings
from warest.domain.messages import Message, Status
from warest.domain.sessions import Session

REGISTRY = "REG"
SESSION = "main"
CHAT = "6281234500000@s.whatsapp.net"
ME = "6289900000000@s.whatsapp.net"
WA_ID = "3EB0AAAA0001"
OWNER = Principal(user_id=uuid4(), username="alice", registry=REGISTRY, role="user")


class Queries:
    async def pending_outbound(self, registry: str, session_id: str) -> list[Any]:
        return []

    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None:
        return None

    async def autostart_sessions(self) -> list[Any]:
        return []


class Connection:
    """Counts the calls that reach WhatsApp; ``during`` runs while a call is in flight."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, MessageRef]] = []
        self.during: Callable[[], Awaitable[None]] | None = None
        self.refuse = False

    async def _call(self, action: str, target: MessageRef) -> None:
        self.calls.append((action, target))
        if self.during is not None:
            await self.during()
        if self.refuse:
            raise EngineError("not allowed by WhatsApp")

    async def send_edit(self, target: MessageRef, text: str) -> None:
        await self._call("edit", target)

    async def send_reaction(self, target: MessageRef, emoji: str) -> None:
        await self._call("reaction", target)

    async def send_revoke(self, target: MessageRef) -> None:
        await self._call("revoke", target)


class Engine:
    name = "fake"

    def __init__(self) -> None:
        self.conn = Connection()

    def connection(self, ref: SessionRef, listener: Any) -> Connection:
        return self.conn


class Sessions:
    def __init__(self, record: SessionRecord) -> None:
        self.record = record

    async def get(self, owner: Principal, name: str) -> SessionRecord:
        return self.record


class Harness:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.engine = Engine()
        now = datetime.now(UTC)
        record = SessionRecord(
            id=uuid4(), registry=REGISTRY, session_id=SESSION, label=SESSION, auto_start=False,
            engine="fake", webhook_url=None, status="open", created_at=now, updated_at=now,
        )
        self.manager = SessionManager({"fake": self.engine}, self.store, Queries(), QueueSettings())  # type: ignore[dict-item]
        self.runtime = self.manager.runtime(record)
        self.actions = ActionService(self.store, Sessions(record), self.manager)  # type: ignore[arg-type]
        self.message_id = UUID(int=0)

    async def open_with_a_sent_message(self) -> None:
        session = Session.create(REGISTRY, SESSION, None, False, "fake")
        session.opened(ME, None, "Alice")
        await self.store.save(session)
        message = Message.queue(REGISTRY, SESSION, CHAT, WA_ID, "helo", [], None, None)
        message.mark_sent(WA_ID, datetime.now(UTC), 1)
        await self.store.save(message)
        self.runtime.remember(message)  # as after its send: the runtime's cached copy
        self.message_id = message.id
        await self.runtime.session()

    async def receipt_from_elsewhere(self) -> None:
        """Another writer (a receipt batch, another worker) saves on the message's stream."""
        other = await self.store.get(self.message_id)
        if other.apply_receipt(Status.DELIVERED, datetime.now(UTC), CHAT):
            await self.store.save(other)

    async def receipt_through_the_runtime(self) -> None:
        await self.runtime.on(Receipt(CHAT, (WA_ID,), "delivered", datetime.now(UTC), by=CHAT))
        await self.runtime.drain_receipts()


ACTIONS: dict[str, Callable[[ActionService], Awaitable[Message]]] = {
    "edit": lambda actions: actions.edit(OWNER, SESSION, WA_ID, "hello"),
    "reaction": lambda actions: actions.react(OWNER, SESSION, WA_ID, "👍"),
    "revoke": lambda actions: actions.revoke(OWNER, SESSION, WA_ID),
}
RECORDED = {"edit": "Edited", "reaction": "Reacted", "revoke": "Revoked"}


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_a_conflict_on_the_first_save_reaches_the_engine_once_and_is_stored(action: str) -> None:
    harness = Harness()
    await harness.open_with_a_sent_message()
    harness.engine.conn.during = harness.receipt_from_elsewhere

    message = await ACTIONS[action](harness.actions)

    assert harness.store.conflicts == 1  # the first save met the receipt
    assert [name for name, _ in harness.engine.conn.calls] == [action]
    assert harness.store.kinds(harness.message_id) == ["Queued", "Sent", "StatusChanged", RECORDED[action]]
    stored = await harness.store.get(harness.message_id)
    assert stored.status == Status.DELIVERED and message.version == stored.version == 4
    if action == "edit":
        assert stored.text == "hello"


async def test_a_receipt_saved_during_the_call_does_not_record_the_action_before_whatsapp_answers() -> None:
    """The runtime's cached message is shared with its receipts: the action's change is made on
    a copy of its own, so a receipt saved meanwhile carries nothing of it, and a refused call
    records nothing."""
    harness = Harness()
    await harness.open_with_a_sent_message()
    harness.engine.conn.during = harness.receipt_through_the_runtime
    harness.engine.conn.refuse = True

    with pytest.raises(EngineRefused):
        await harness.actions.edit(OWNER, SESSION, WA_ID, "hello")

    assert len(harness.engine.conn.calls) == 1
    assert harness.store.kinds(harness.message_id) == ["Queued", "Sent", "StatusChanged"]
    assert (await harness.runtime.message_by_wa_id(WA_ID)).text == "helo"  # type: ignore[union-attr]


async def test_after_an_action_the_runtime_serves_the_saved_message() -> None:
    harness = Harness()
    await harness.open_with_a_sent_message()
    harness.engine.conn.during = harness.receipt_through_the_runtime

    await harness.actions.edit(OWNER, SESSION, WA_ID, "hello")

    assert len(harness.engine.conn.calls) == 1
    assert harness.store.kinds(harness.message_id) == ["Queued", "Sent", "StatusChanged", "Edited"]
    cached = await harness.runtime.message_by_wa_id(WA_ID)
    assert cached is not None and cached.text == "hello" and cached.status == Status.DELIVERED
