"""What WhatsApp reported is not lost on its way to the log: a failed save is retried until
stored (and a retry after a save that did commit finds it stored, not a duplicate); while
saves wait, the engine is held back by bounded queues instead of queueing without limit
or dropping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tests.fakes import FakeMessagingQueries, InMemoryEventStore
from warest.app.engine import InboundMessage, Me, Receipt, SessionRef
from warest.app.happenings import Opened
from warest.app.runtime import LifecycleSettings, QueueSettings, SessionRuntime
from warest.domain.messages import Message
from warest.domain.messages import Status as MessageStatus
from warest.domain.sessions import Session, Status
from warest.infra.engines.neonize.connection import Inbox

REF = SessionRef("REG", "main")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ANN = "628123@s.whatsapp.net"


class IdleEngine:
    name = "test"

    def connection(self, ref: SessionRef, listener: Any) -> Any:
        return object()


def runtime_on(store: InMemoryEventStore, **settings: Any) -> SessionRuntime:
    session = Session.create(REF.registry, REF.name, None, True, "sandbox")
    store.put(session)
    options = {"store_retry_base_s": 0.001, "store_retry_max_s": 0.01, **settings}
    queries = FakeMessagingQueries(store)
    return SessionRuntime(
        REF, IdleEngine(), store, queries, QueueSettings(), lambda _r: None, LifecycleSettings(**options)
    )


async def sent(store: InMemoryEventStore, runtime: SessionRuntime, wa_id: str) -> Message:
    message = Message.queue(
        REF.registry, REF.name, "628123@s.whatsapp.net", f"local-{wa_id}", "hi", [], None, None
    )
    message.mark_sent(wa_id, NOW, 1)
    await store.save(message)
    runtime.remember(await store.get(message.id))
    return message


def inbound(wa_id: str) -> InboundMessage:
    return InboundMessage(
        wa_id=wa_id, chat="628123@s.whatsapp.net", sender="628123@s.whatsapp.net", text="hi"
    )


async def test_a_received_message_whose_save_fails_once_is_retried_and_stored() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    store.fail_next = 1
    await runtime.on(inbound("3EB0A"))  # returns once stored
    assert store.names(Message.Received) == ["Received"] and store.calls == 2
    await runtime.queue.close()


async def test_a_retry_after_a_save_that_did_commit_stores_no_duplicate() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    store.fail_next, store.committed = 1, True  # stored, but the answer was lost
    await runtime.on(inbound("3EB0B"))
    store.committed = False
    assert store.names(Message.Received) == ["Received"]  # the retry's conflict means "stored"
    await runtime.queue.close()


async def test_a_lifecycle_report_whose_save_fails_is_retried() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    store.fail_next = 3
    await runtime.on(Opened(Me(jid="628111@s.whatsapp.net")))
    assert runtime.status == Status.OPEN and store.names(Session.Opened) == ["Opened"]
    await runtime.queue.close()


async def test_a_receipt_batch_whose_save_fails_is_retried_not_dropped() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store)
    message = await sent(store, runtime, "3EB0SENT")
    store.fail_next = 2
    await runtime.on(Receipt("628123@s.whatsapp.net", ("3EB0SENT",), "delivered", NOW))
    await runtime.drain_receipts()
    stored = await store.get(message.id)
    assert stored.status == MessageStatus.DELIVERED
    await runtime.queue.close()


async def test_receipts_waiting_for_a_slow_store_hold_the_engine_back() -> None:
    store = InMemoryEventStore()
    runtime = runtime_on(store, receipt_backlog=2)
    messages = [await sent(store, runtime, f"3EB0{i}") for i in range(4)]
    store.gate = asyncio.Event()  # every save waits: the database is slow or away
    receipts = [Receipt("628123@s.whatsapp.net", (m.wa_id,), "delivered", NOW) for m in messages]
    await runtime.on(receipts[0])  # taken by the recorder at once
    await asyncio.sleep(0)
    await runtime.on(receipts[1])
    await runtime.on(receipts[2])  # the backlog is full now
    late = asyncio.create_task(runtime.on(receipts[3]))
    await asyncio.sleep(0.05)
    assert not late.done()  # the engine's call waits for room instead of queueing more
    store.gate.set()
    await asyncio.wait_for(late, 5)
    await runtime.drain_receipts()
    for message in messages:  # all of them recorded: none was dropped
        assert (await store.get(message.id)).status == MessageStatus.DELIVERED
    await runtime.queue.close()


async def test_a_full_inbox_makes_the_engine_callback_wait_and_drops_nothing() -> None:
    inbox = Inbox(size=2)
    handled: list[int] = []
    release = asyncio.Event()

    def job(n: int) -> Any:
        async def run() -> None:
            await release.wait()
            handled.append(n)

        return run

    pump = asyncio.create_task(inbox.run(lambda: None))
    try:
        await inbox.put(job(1))
        await inbox.put(job(2))
        third = asyncio.create_task(inbox.put(job(3)))
        fourth = asyncio.create_task(inbox.put(job(4)))
        await asyncio.sleep(0.05)
        assert not third.done() and not fourth.done()  # the callbacks wait: no room
        inbox.put_control(job(0))  # the lifecycle's own notices are never held back
        release.set()
        await asyncio.wait_for(asyncio.gather(third, fourth), 5)
        for _ in range(100):
            if len(handled) == 5:
                break
            await asyncio.sleep(0.01)
        assert handled == [1, 2, 0, 3, 4]  # arrival order, nothing dropped
    finally:
        pump.cancel()
