"""Ids and de-duplication (issue 12, finding 5).

A message is keyed as WhatsApp keys it, (chat, from me, id), within one incarnation of its
session; a message recorded under the old key (registry, session, id) is still found; an
edit WhatsApp delivers again is one event; a queued message leaves from the account it was
queued from or fails; an Idempotency-Key lasts a time to live.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_DNS, uuid5

from tests.fakes import FakeClock, InMemoryEventStore
from warest.app.engine import InboundMessage, Me, Receipt
from warest.app.happenings import Edited, Opened
from warest.app.messaging import MessagingService
from warest.app.records import SessionRecord
from warest.domain import ids
from warest.domain.idempotency import IdempotencyRecord
from warest.domain.jid import Jid
from warest.domain.messages import Message, Status
from warest.domain.sessions import Session
from warest.domain.webhooks import WebhookEndpoint

from .test_message_wa_ids import ME, REF, FakeWhatsApp, runtime_on, wait_for

ALICE = "6281111100000@s.whatsapp.net"
BOB = "6282222200000@s.whatsapp.net"


def inbound(wa_id: str, chat: str, text: str) -> InboundMessage:
    return InboundMessage(wa_id=wa_id, chat=chat, sender=chat, text=text, sent_at=datetime.now(UTC))


def messages_in(store: InMemoryEventStore) -> list[Message]:
    return store.aggregates(Message)


async def test_two_chats_with_the_same_whatsapp_id_keep_both_messages() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store, FakeWhatsApp())
    await runtime.on(inbound("BAE5SAMEID", ALICE, "from alice"))
    await runtime.on(inbound("BAE5SAMEID", BOB, "from bob"))
    await runtime.on(inbound("BAE5SAMEID", ALICE, "from alice"))  # a redelivery: dropped
    assert sorted((m.chat, m.text) for m in messages_in(store)) == [(ALICE, "from alice"), (BOB, "from bob")]

    # What WhatsApp reports about one of them reaches that one, from a fresh runtime too.
    fresh = runtime_on(store, FakeWhatsApp())
    await fresh.on(Edited(BOB, "BAE5SAMEID", BOB, "bob, edited", datetime.now(UTC)))
    texts = {m.chat: m.text for m in messages_in(store)}
    assert texts == {ALICE: "from alice", BOB: "bob, edited"}
    assert (await fresh.message_by_wa_id("BAE5SAMEID", ALICE)).text == "from alice"  # type: ignore[union-attr]
    await runtime.shutdown()
    await fresh.shutdown()


async def test_a_message_recorded_under_the_old_key_is_still_found() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store, FakeWhatsApp())
    old_id = uuid5(ids.NAMESPACE, "\x1f".join(("message", REF.registry, REF.name, "3EB0OLD")))
    assert ids.legacy_message_id(REF.registry, REF.name, "3EB0OLD") == old_id
    old = Message.queue(REF.registry, REF.name, ALICE, "3EB0OLD", "before", [], None, None)
    events = old.collect_events()
    store.record([type(events[0])(**{**_fields(events[0]), "originator_id": old_id})])
    fresh = runtime_on(store, FakeWhatsApp())
    await fresh.on(Receipt(ALICE, ("3EB0OLD",), "delivered", datetime.now(UTC)))
    await fresh.drain_receipts()
    stored = await store.get(old_id)
    assert stored.status == Status.DELIVERED
    await runtime.shutdown()
    await fresh.shutdown()


async def test_an_edit_delivered_again_is_recorded_once() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store, FakeWhatsApp())
    await runtime.on(inbound("BAE5EDITED", ALICE, "first"))
    at = datetime.now(UTC)
    await runtime.on(Edited(ALICE, "BAE5EDITED", ALICE, "second", at))
    await runtime.on(Edited(ALICE, "BAE5EDITED", ALICE, "second", at))  # WhatsApp delivers it again
    fresh = runtime_on(store, FakeWhatsApp())  # and again after a restart
    await fresh.on(Edited(ALICE, "BAE5EDITED", ALICE, "second", at))
    stale = at - timedelta(seconds=5)
    await fresh.on(Edited(ALICE, "BAE5EDITED", ALICE, "stale", stale))  # an older edit, late
    [message] = messages_in(store)
    edits = [e for e in store.events(message.id) if isinstance(e, Message.Edited)]
    assert [e.text for e in edits] == ["second"]
    assert message.text == "second" and message.edits == 1
    await runtime.shutdown()
    await fresh.shutdown()


async def test_a_queued_message_never_leaves_from_another_number() -> None:
    """Queued from ME; a logout, then a crash before the queued messages were failed; the
    next login is another phone: the message is failed, not sent from that number."""
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp()
    runtime = runtime_on(store, whatsapp)
    message = Message.queue(REF.registry, REF.name, ALICE, "3EB0PENDING", "hi", [], None, None, sender=ME)
    await store.save(message)
    await runtime.on(Opened(Me(jid="6287777700000:3@s.whatsapp.net")))
    stored = await store.get(message.id)
    assert stored.status == Status.FAILED
    [failed] = [e for e in store.events(message.id) if isinstance(e, Message.SendFailed)]
    assert failed.code == "sender_changed"
    assert "6289999900000" in failed.reason and "6287777700000" in failed.reason
    assert whatsapp.sent == []

    same = Message.queue(REF.registry, REF.name, ALICE, "3EB0SAMEPHONE", "hi", [], None, None, sender=ME)
    await store.save(same)
    await runtime.on(Opened(Me(jid="6289999900000:7@s.whatsapp.net")))  # the number it was queued from
    await wait_for(lambda: bool(whatsapp.sent))
    assert whatsapp.sent == [("3EB0SAMEPHONE", "3EB0SAMEPHONE")]
    await runtime.shutdown()


async def test_a_message_queued_before_the_session_was_deleted_never_leaves() -> None:
    """Queued in incarnation 1, still pending (a crash before it was failed); the session is
    deleted and created again: at the new incarnation's login it is failed, not sent."""
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp()
    runtime_on(store, whatsapp)  # stores the session
    message = Message.queue(REF.registry, REF.name, ALICE, "3EB0OLDLIFE", "hi", [], None, None, sender=ME)
    await store.save(message)
    session: Session = await store.get(ids.session_id(REF.registry, REF.name))
    session.delete()
    session.recreate(None, True, "sandbox")
    await store.save(session)
    runtime = runtime_on(store, whatsapp)
    await runtime.on(Opened(Me(jid=ME)))
    [failed] = [e for e in store.events(message.id) if isinstance(e, Message.SendFailed)]
    assert failed.code == "session_ended" and "deleted" in failed.reason
    assert whatsapp.sent == []
    await runtime.shutdown()


def test_a_session_created_before_incarnations_keeps_its_ids_and_its_next_creation_is_new() -> None:
    """Events recorded before incarnations existed have none (0): that session keeps the
    ids its chats and messages have; deleted and created again, it is incarnation 2."""
    old = Session.Created(
        originator_id=ids.session_id("REG", "old"),
        originator_version=1,
        timestamp=datetime.now(UTC),
        registry="REG",
        name="old",
        label="old",
    )
    session = old.mutate(None)
    session._pending = []
    assert session.incarnation == 0
    assert ids.chat_id("REG", "old", ALICE, session.incarnation) == ids.chat_id("REG", "old", ALICE)
    session.delete()
    session.recreate(None, True, "sandbox")
    assert session.incarnation == 2
    deleted, created = session.collect_events()
    assert (deleted.registry, deleted.name) == ("REG", "old")
    assert created.incarnation == 2


def test_incarnations_give_new_ids_and_the_first_keeps_todays() -> None:
    session = Session.create("REG", "main", None, True, "sandbox")
    assert session.incarnation == 1
    today = uuid5(ids.NAMESPACE, "\x1f".join(("chat", "REG", "main", ALICE)))
    assert ids.chat_id("REG", "main", ALICE, 0) == ids.chat_id("REG", "main", ALICE, 1) == today
    today_key = uuid5(ids.NAMESPACE, "\x1f".join(("idempotency", "REG", "main", "k")))
    assert ids.idempotency_id("REG", "main", "k", session.incarnation) == today_key
    today_hook = uuid5(ids.NAMESPACE, "\x1f".join(("webhook", "REG", "main", "primary")))
    assert ids.webhook_endpoint_id("REG", "main", "primary") == today_hook
    session.delete()
    session.recreate(None, True, "sandbox")
    assert session.incarnation == 2
    fresh = {
        ids.chat_id("REG", "main", ALICE, 2),
        ids.idempotency_id("REG", "main", "k", 2),
        ids.webhook_endpoint_id("REG", "main", "primary", 2),
        ids.message_id("REG", "main", ALICE, True, "3EB0X", 2),
    }
    assert not fresh & {today, today_key, today_hook, ids.message_id("REG", "main", ALICE, True, "3EB0X", 1)}
    endpoint = WebhookEndpoint.add("REG", "main", "primary", "https://example.org/h", "sealed", incarnation=2)
    assert endpoint.id == ids.webhook_endpoint_id("REG", "main", "primary", 2)


# -- idempotency keys expire --------------------------------------------------------------


class OneRuntime:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def get(self, registry: str, name: str) -> Any:
        return self.runtime


async def test_an_idempotency_key_is_replayed_within_its_ttl_and_new_after_it() -> None:
    store, whatsapp = InMemoryEventStore(), FakeWhatsApp()
    runtime = runtime_on(store, whatsapp)
    await runtime.session()
    runtime.queue.online()
    clock = FakeClock()
    service = MessagingService(
        store,
        OneRuntime(runtime),
        2.0,
        idempotency_ttl=timedelta(hours=24),
        clock=clock,
    )
    record = _record()
    to = [Jid.parse(ALICE)]

    first = await service.send_text(record, to, "hello", idempotency_key="key-1")
    clock.advance(hours=23)
    again = await service.send_text(record, to, "hello", idempotency_key="key-1")
    assert [o.message_id for o in again] == [o.message_id for o in first]
    assert len(whatsapp.sent) == 1

    clock.advance(hours=2)  # 25 hours after the first request: the key is new again
    later = await service.send_text(record, to, "hello", idempotency_key="key-1")
    assert later[0].message_id != first[0].message_id and later[0].status == "sent"
    assert len(whatsapp.sent) == 2
    stored: IdempotencyRecord = await store.get(ids.idempotency_id(REF.registry, REF.name, "key-1"))
    assert [type(e).__name__ for e in store.events(stored.id)] == ["Recorded", "Renewed"]
    replay = await service.send_text(record, to, "hello", idempotency_key="key-1")  # the renewed one
    assert [o.message_id for o in replay] == [o.message_id for o in later]
    assert len(whatsapp.sent) == 2
    await asyncio.sleep(0)
    await runtime.shutdown()


def _record() -> SessionRecord:
    now = datetime.now(UTC)
    return SessionRecord(
        id=uuid5(NAMESPACE_DNS, "x"),
        registry=REF.registry,
        session_id=REF.name,
        label="main",
        auto_start=True,
        engine="sandbox",
        webhook_url=None,
        status="open",
        created_at=now,
        updated_at=now,
    )


def _fields(event: Any) -> dict[str, Any]:
    return {f: getattr(event, f) for f in event.__struct_fields__}
