"""``SessionRuntime.submit``: the one way into a session's outbound queue. It reserves room
for a request's messages, lets the caller record them, queues what was recorded, in order,
and gives back whatever room was not used, whatever happens. The queue stays offline here
(no engine sends), so what was queued stays in it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.fakes import InMemoryEventStore
from tests.unit.test_engine_facts_stored import REF, runtime_on
from warest.app.engine import OutboundText
from warest.app.outbound import QueueIsFull
from warest.app.runtime import Outgoing, SessionRuntime
from warest.domain.messages import Message
from warest.domain.sessions import Session

SIZE = 1000  # QueueSettings().max_size
CHATS = ["6281000000001@s.whatsapp.net", "6281000000002@s.whatsapp.net"]


def has_room_for(runtime: SessionRuntime, count: int) -> bool:
    if not runtime.queue.reserve(count):
        return False
    runtime.queue.release(count)
    return True


async def record_all(store: InMemoryEventStore, account: Session) -> Sequence[Outgoing]:
    messages = [
        Message.queue(
            REF.registry, REF.name, chat, f"3EB0{i}", "hi", [], None, None, incarnation=account.incarnation
        )
        for i, chat in enumerate(CHATS)
    ]
    await store.save(*messages)
    return [(m, OutboundText(m.chat, m.wa_id, "hi")) for m in messages]


async def test_recorded_messages_are_queued_in_order_and_their_room_is_theirs() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    done = await runtime.submit(len(CHATS), lambda account: record_all(store, account))
    assert len(done) == len(CHATS) and not any(d.done() for d in done)  # queued, not sent
    assert len(runtime.queue) == len(CHATS)
    assert has_room_for(runtime, SIZE - len(CHATS)) and not has_room_for(runtime, SIZE - len(CHATS) + 1)
    await runtime.queue.close()


async def test_a_record_that_fails_gives_the_room_back_and_queues_nothing() -> None:
    runtime = runtime_on(InMemoryEventStore())

    async def failing(_account: Session) -> Sequence[Outgoing]:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        await runtime.submit(SIZE, failing)
    assert len(runtime.queue) == 0 and has_room_for(runtime, SIZE)
    await runtime.queue.close()


async def test_a_record_that_queues_nothing_gives_the_room_back() -> None:
    runtime = runtime_on(InMemoryEventStore())

    async def replay(_account: Session) -> Sequence[Outgoing]:
        return []  # e.g. an Idempotency-Key used before: that request's messages answer

    assert await runtime.submit(3, replay) == []
    assert has_room_for(runtime, SIZE)
    await runtime.queue.close()


async def test_a_request_the_queue_has_no_room_for_is_refused_before_recording() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    recorded = []

    async def record(account: Session) -> Sequence[Outgoing]:
        recorded.append(account)
        return []

    assert runtime.queue.reserve(SIZE - 1)  # all but one place taken
    with pytest.raises(QueueIsFull):
        await runtime.submit(2, record)
    assert recorded == []
    runtime.queue.release(SIZE - 1)
    await runtime.queue.close()
