"""Receipts are recorded in batches behind the engine: a burst of them costs a few saves, not
one save (one commit round trip) each, so a busy session's receipts keep up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from warest.app.engine import Receipt, SessionRef
from warest.app.runtime import QueueSettings, SessionRuntime
from warest.domain.messages import Message, Status


class CountingStore:
    """Records what each save held; a save takes a commit's time."""

    def __init__(self) -> None:
        self.saves: list[int] = []

    async def save(self, *aggregates: Any) -> int:
        for aggregate in aggregates:
            aggregate.collect_events()
        self.saves.append(len(aggregates))
        await asyncio.sleep(0.01)
        return 0

    async def get(self, aggregate_id: UUID) -> Any:
        return None


class NoQueries:
    async def pending_outbound(self, registry: str, session_id: str) -> list[Any]:
        return []

    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None:
        return None

    async def autostart_sessions(self) -> list[Any]:
        return []


class IdleEngine:
    name = "test"

    def connection(self, ref: SessionRef, listener: Any) -> Any:
        return object()


def sent_message(wa_id: str) -> Message:
    message = Message.queue("REG", "main", "6281234500000@s.whatsapp.net", wa_id, "hi", [], None, None)
    message.mark_sent(wa_id, datetime.now(UTC), 1)
    message.collect_events()
    return message


async def test_a_burst_of_receipts_is_recorded_in_a_few_saves_in_order() -> None:
    store = CountingStore()
    runtime = SessionRuntime(
        SessionRef("REG", "main"),
        IdleEngine(),
        store,
        NoQueries(),
        QueueSettings(),
        lambda _r: None,  # type: ignore[arg-type]
    )
    messages = [sent_message(f"3EB0{i:04d}") for i in range(100)]
    for message in messages:
        runtime.remember(message)
    now = datetime.now(UTC)
    for message in messages:  # as an engine reports them: server, then delivered, per message
        await runtime.on(Receipt(message.chat, (message.wa_id,), "server", now))
        await runtime.on(Receipt(message.chat, (message.wa_id,), "delivered", now, by="6281234500000"))
    await runtime.drain_receipts()
    assert all(m.status == Status.DELIVERED for m in messages)
    assert sum(store.saves) <= 200 and len(store.saves) <= 3, store.saves  # 200 saves one by one
    await runtime.queue.close()
