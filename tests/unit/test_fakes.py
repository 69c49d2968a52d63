"""The in-memory event store keeps the promises of the real one: events round-trip through
the real mapper, a save is atomic, a taken version is a ``ConcurrencyConflict``, positions
grow by one per event; and the fake read models answer from its log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from tests.fakes import FakeMessagingQueries, FakeRegistryQueries, FakeWaiter, InMemoryEventStore
from warest.app.ports import ConcurrencyConflict
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role
from warest.infra.eventstore.mapper import encode_event

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def test_events_are_stored_encoded_and_come_back_equal() -> None:
    store = InMemoryEventStore()
    message = Message.queue("REG", "main", "628123@s.whatsapp.net", "3EB0A", "hi", ["628@s"], None, "k")
    message.mark_sent("3EB0A", AT, 2)
    events = list(message.pending_events)
    await store.save(message)
    assert [s.state for s in store.log] == [encode_event(e) for e in events]
    assert store.events(message.id) == events
    loaded = await store.get(message.id)
    assert loaded is not message and (loaded.wa_id, loaded.sent_at, loaded.version) == ("3EB0A", AT, 2)


async def test_positions_count_events_and_an_empty_save_is_zero() -> None:
    store = InMemoryEventStore()
    session = Session.create("REG", "main", None, True, "sandbox")
    session.issue_qr(20, 1)
    assert await store.save(session) == 2
    assert await store.save(session) == 0  # nothing pending
    user = User.register(uuid4(), "alice", "REG", Role.USER, None, None)
    assert await store.save(user) == 3 and store.max_position == 3


async def test_a_taken_version_conflicts_and_nothing_of_the_save_is_stored() -> None:
    store = InMemoryEventStore()
    session = Session.create("REG", "main", None, True, "sandbox")
    await store.save(session)
    first, second = await store.get(session.id), await store.get(session.id)
    first.configure(label="one")
    await store.save(first)
    second.configure(label="two")
    user = User.register(uuid4(), "alice", "REG", Role.USER, None, None)
    with pytest.raises(ConcurrencyConflict):
        await store.save(user, second)
    assert await store.get(user.id) is None and store.conflicts == 1
    assert (await store.get(session.id)).label == "one"


async def test_failures_before_and_after_the_commit() -> None:
    store = InMemoryEventStore()
    store.fail_next = 1
    with pytest.raises(ConnectionError):
        await store.save(Session.create("REG", "a", None, True, "sandbox"))
    assert store.log == []
    store.fail_next, store.committed = 1, True
    with pytest.raises(ConnectionError):
        await store.save(Session.create("REG", "b", None, True, "sandbox"))
    assert store.kinds(Session.create("REG", "b", None, True, "sandbox").id) == ["Created"]
    store.fail = lambda aggregates: True
    with pytest.raises(ConnectionError):
        await store.save(Session.create("REG", "c", None, True, "sandbox"))
    assert len(store.log) == 1 and store.calls == 3


async def test_a_gate_holds_saves_until_it_opens() -> None:
    store = InMemoryEventStore()
    store.gate = asyncio.Event()
    saving = asyncio.ensure_future(store.save(Session.create("REG", "a", None, True, "sandbox")))
    await asyncio.sleep(0.01)
    assert not saving.done() and store.log == []
    store.gate.set()
    assert await saving == 1


async def test_the_read_models_answer_from_the_log() -> None:
    store = InMemoryEventStore()
    user = User.register(uuid4(), "Alice", "REG", Role.USER, None, "digest")
    kept = Session.create("REG", "kept", None, True, "sandbox")
    gone = Session.create("REG", "gone", None, True, "sandbox")
    gone.delete()
    logged_out = Session.create("REG", "out", None, True, "sandbox")
    logged_out.logged_out("phone")
    queued = Message.queue("REG", "kept", "628@s.whatsapp.net", "3EB0Q", "hi", [], "3EB0R", None)
    store.put(user, kept, gone, logged_out, queued)
    registry, messaging = FakeRegistryQueries(store), FakeMessagingQueries(store)

    assert (await registry.user_by_username("alice")) == (await registry.user_by_key_digest("digest"))
    assert (await registry.user_by_id(user.id)) is not None and await registry.user_by_id(kept.id) is None
    assert [r.session_id for r in await registry.sessions("REG")] == ["kept", "out"]
    assert await registry.session("OTHER", "kept") is None
    assert [r.session_id for r in await messaging.autostart_sessions()] == ["kept"]
    [pending] = await messaging.pending_outbound("REG", "kept")
    assert (pending.message_id, pending.reply_to, pending.local_id) == (queued.id, "3EB0R", "3EB0Q")
    assert await messaging.message_for_wa_id("REG", "kept", "3EB0Q") == queued.id
    assert await messaging.pending_outbound("REG", "out") == []

    waiter = FakeWaiter(store)
    assert await waiter.wait(store.max_position) and not await waiter.wait(store.max_position + 1)
