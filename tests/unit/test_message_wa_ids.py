"""WhatsApp ids and messages, without read models.

An outbound message is sent with the WhatsApp id chosen when it was queued, so a message
sent again after a crash (its ``Sent`` was never stored) is the same message for the
recipient. The message a WhatsApp id names is found in the event store: its aggregate id is
derived from that id, and an id an engine chose itself is claimed by its message in the
transaction of its ``Sent``. A read model that is behind (here: one that knows nothing)
never decides whether a receipt, a reaction or an edit applies.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from tests.fakes import FakeMessagingQueries, InMemoryEventStore
from warest.app.engine import InboundMessage, OutboundText, Receipt, SendResult, SessionRef
from warest.app.happenings import Edited
from warest.app.outbound import Job, RetryPolicy
from warest.app.runtime import QueueSettings, SessionRuntime
from warest.domain.messages import Message, Status
from warest.domain.sessions import Session

REF = SessionRef("REG", "main")
TO = "6281234500000@s.whatsapp.net"
QUICK = QueueSettings(policy=RetryPolicy(max_retries=0, delay_ms=0, jitter=0.0, timeout_ms=1000))


class BehindReadModels(FakeMessagingQueries):
    """Read models that have not caught up with anything: every query answers "unknown",
    except the pending outbound messages a restart re-queues (read from the store)."""

    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None:
        return None

    async def autostart_sessions(self) -> list[Any]:
        return []


class FakeWhatsApp:
    """A connection whose sends reach WhatsApp: with the id given (``chooses=False``, like
    the sandbox) or with an id of its own (``chooses=True``, like neonize today)."""

    def __init__(self, chooses: bool = False) -> None:
        self.chooses = chooses
        self.sent: list[tuple[str, str]] = []  # (id sent with, id WhatsApp knows)

    async def send_text(self, message: OutboundText) -> SendResult:
        wa_id = f"3EB0{len(self.sent):018X}" if self.chooses else message.wa_id
        self.sent.append((message.wa_id, wa_id))
        return SendResult(wa_id=wa_id, sent_at=datetime.now(UTC))

    async def stop(self) -> None:
        pass


class Engine:
    name = "fake"

    def __init__(self, whatsapp: FakeWhatsApp) -> None:
        self.whatsapp = whatsapp

    def connection(self, ref: SessionRef, listener: Any) -> FakeWhatsApp:
        return self.whatsapp


ME = "6289999900000@s.whatsapp.net"


def runtime_on(store: InMemoryEventStore, whatsapp: FakeWhatsApp) -> SessionRuntime:
    """A fresh runtime (as after a restart: nothing in its memory) on ``store``, whose
    session (logged in as ``ME``) is stored the first time."""
    session = Session.create(REF.registry, REF.name, None, True, "sandbox")
    if session.id not in store.streams:
        session.opened(ME, None, None)
        store.put(session)
    return SessionRuntime(REF, Engine(whatsapp), store, BehindReadModels(store), QUICK, lambda _r: None)


async def queue_one(store: InMemoryEventStore, runtime: SessionRuntime, wa_id: str, text: str) -> Message:
    """What MessagingService does: record Queued, then hand the message to the queue."""
    message = Message.queue(REF.registry, REF.name, TO, wa_id, text, [], None, None)
    await store.save(message)
    runtime.remember(message)
    job = Job(message.id, OutboundText(TO, message.wa_id, text))
    assert runtime.queue.put(job)
    await asyncio.wait_for(job.done, 5)
    return message


def sent_ids(store: InMemoryEventStore, message_id: UUID) -> list[str]:
    return [e.wa_id for e in store.events(message_id) if isinstance(e, Message.Sent)]


async def test_a_message_whose_sent_was_not_stored_is_sent_again_with_the_same_id() -> None:
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp()
    first = runtime_on(store, whatsapp)
    first.queue.online()
    store.fail = lambda aggregates: any(
        isinstance(e, Message.Sent) for a in aggregates for e in a.pending_events
    )
    message = await queue_one(store, first, "3EB0AAAAAAAAAAAAAAAAAA", "once")
    assert whatsapp.sent == [("3EB0AAAAAAAAAAAAAAAAAA", "3EB0AAAAAAAAAAAAAAAAAA")]
    assert sent_ids(store, message.id) == []  # it reached WhatsApp; its Sent did not reach the log
    # The failed save left nothing behind in memory: the runtime still sees it pending.
    cached = await first.message_by_wa_id("3EB0AAAAAAAAAAAAAAAAAA")
    assert cached is not None and cached.status == Status.QUEUED and cached.version == 1
    await first.shutdown()

    store.fail = None
    second = runtime_on(store, whatsapp)  # the next start
    assert await second.resume_pending() == 1
    second.queue.online()
    await wait_for(lambda: bool(sent_ids(store, message.id)))
    # Sent again under the id it was queued with: for WhatsApp it is one message.
    assert whatsapp.sent[1] == ("3EB0AAAAAAAAAAAAAAAAAA", "3EB0AAAAAAAAAAAAAAAAAA")
    assert sent_ids(store, message.id) == ["3EB0AAAAAAAAAAAAAAAAAA"]
    await second.shutdown()


@pytest.mark.parametrize("engine_chooses_ids", [False, True], ids=["sent-with-our-id", "engine-own-id"])
async def test_receipts_reactions_and_edits_find_a_just_sent_message_without_read_models(
    engine_chooses_ids: bool,
) -> None:
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp(chooses=engine_chooses_ids)
    sender = runtime_on(store, whatsapp)
    sender.queue.online()
    message = await queue_one(store, sender, "3EB0BBBBBBBBBBBBBBBBBB", "hello")
    [(_, wa_id)] = whatsapp.sent
    assert sent_ids(store, message.id) == [wa_id]
    await sender.shutdown()

    # Another runtime (after a restart, or with the id evicted from memory), read models behind.
    runtime = runtime_on(store, whatsapp)
    now = datetime.now(UTC)
    await runtime.on(Receipt(TO, (wa_id,), "delivered", now, by="6281234500000"))
    await runtime.drain_receipts()
    await runtime.on(
        InboundMessage(wa_id="BAE5REACTION", chat=TO, sender=TO, kind="reaction", text="👍", quoted_id=wa_id)
    )
    await runtime.on(Edited(TO, wa_id, TO, "hello (edited)", now))
    stored = await store.get(message.id)
    assert stored.status == Status.DELIVERED
    assert stored.reactions == {TO: "👍"}
    assert stored.text == "hello (edited)"
    assert await runtime.message_by_wa_id("3EB0UNKNOWN") is None
    await runtime.shutdown()


async def test_an_id_chosen_by_the_engine_is_claimed_with_the_sent_event() -> None:
    """The claim of WhatsApp's id and the ``Sent`` that names it are one save: one cannot
    be stored without the other."""
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp(chooses=True)
    runtime = runtime_on(store, whatsapp)
    runtime.queue.online()
    saves: list[list[str]] = []
    store.fail = lambda aggregates: saves.append([type(a).__name__ for a in aggregates]) and False
    await queue_one(store, runtime, "3EB0CCCCCCCCCCCCCCCCCC", "claimed")
    assert saves[-1] == ["Message", "Claim"]
    await runtime.shutdown()


async def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_a_receipt_for_a_message_still_queued_records_its_sent_first() -> None:
    """The engine sent it, its Sent was lost, then WhatsApp's receipt came: the message was
    sent under its queued id, so it is recorded as sent and is not sent again."""
    message = Message.queue(REF.registry, REF.name, TO, "3EB0DDDDDDDDDDDDDDDDDD", "hi", [], None, None)
    message.collect_events()
    at = datetime.now(UTC)
    assert message.apply_receipt(Status.SERVER, at)
    sent, changed = message.collect_events()
    assert isinstance(sent, Message.Sent) and sent.wa_id == "3EB0DDDDDDDDDDDDDDDDDD" and sent.sent_at == at
    assert isinstance(changed, Message.StatusChanged) and changed.status == Status.SERVER
    assert not message.pending and message.status == Status.SERVER
