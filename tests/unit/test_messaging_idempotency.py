"""MessagingService's rules on the in-memory event store: an Idempotency-Key replays the first
request (the same messages, nothing queued twice), refuses a different request, and is new
again after its time to live; input and session rules refuse before anything is recorded.

The session is open in the log and its runtime exists (on the sandbox engine), but its
queue is offline: messages are recorded and queued, never sent, so no engine is involved
and every outcome is ``queued``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fakes import FakeClock, FakeMessagingQueries, InMemoryEventStore
from warest.app.manager import SessionManager
from warest.app.messaging import MAX_TEXT, IdempotencyMismatch, MessagingService, QueueIsFull, SessionNotOpen
from warest.app.records import SessionRecord
from warest.app.runtime import QueueSettings
from warest.domain import ids
from warest.domain.errors import InvalidValue
from warest.domain.idempotency import IdempotencyRecord
from warest.domain.jid import Jid
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.infra.engines.sandbox.engine import SandboxEngine
from warest.infra.engines.sandbox.network import SandboxNetwork

TTL = timedelta(hours=24)
ME = "6289900000000@s.whatsapp.net"
TO = [Jid.parse("6281234500001"), Jid.parse("6281234500002")]


class Messaging:
    def __init__(self, *, open_: bool = True, max_size: int = 1000) -> None:
        self.store = InMemoryEventStore()
        self.clock = FakeClock()
        session = Session.create("REG", "main", None, True, "sandbox")
        if open_:
            session.opened(ME, None, "Me")
        self.store.put(session)
        self.record = SessionRecord(
            id=session.id, registry="REG", session_id="main", label="main", auto_start=True,
            engine="sandbox", webhook_url=None, status=session.status.value,
            created_at=session.created_on, updated_at=session.modified_on,
        )  # fmt: skip
        engine = SandboxEngine(SandboxNetwork(store=None))  # type: ignore[arg-type]  # never started
        self.manager = SessionManager(
            {"sandbox": engine},
            self.store,
            FakeMessagingQueries(self.store),
            QueueSettings(max_size=max_size),
        )
        self.service = MessagingService(self.store, self.manager, 0.0, idempotency_ttl=TTL, clock=self.clock)

    async def with_runtime(self) -> Messaging:
        await self.manager.runtime(self.record).session()  # the runtime knows its session
        return self

    async def send(self, text: str = "hello", key: str | None = "k1", **options: Any) -> list[Any]:
        return await self.service.send_text(self.record, TO, text, idempotency_key=key, **options)

    def messages(self) -> list[Message]:
        return self.store.aggregates(Message)

    def idempotency(self, key: str = "k1") -> IdempotencyRecord:
        found = self.store.load(ids.idempotency_id("REG", "main", key, 1))
        assert isinstance(found, IdempotencyRecord)
        return found


@pytest.fixture
async def messaging() -> Messaging:
    return await Messaging().with_runtime()


async def test_a_send_records_its_messages_and_its_key(messaging: Messaging) -> None:
    outcomes = await messaging.send()
    assert [(o.to, o.status) for o in outcomes] == [(str(j), "queued") for j in TO]
    messages = messaging.messages()
    assert sorted(m.wa_id for m in messages) == sorted(o.message_id for o in outcomes)
    assert all(m.sender == ME and m.incarnation == 1 for m in messages)
    assert sorted(messaging.idempotency().message_ids) == sorted(m.id for m in messages)


async def test_the_same_key_and_request_replays_the_first_answer(messaging: Messaging) -> None:
    first = await messaging.send()
    log = len(messaging.store.log)
    messaging.clock.advance(hours=23, minutes=59, seconds=59)  # just inside the time to live
    again = await messaging.send()
    assert again == first
    assert len(messaging.store.log) == log  # nothing queued twice
    assert len(messaging.messages()) == 2


@pytest.mark.parametrize(
    "change",
    [{"text": "hello!"}, {"reply_to": "3EB0OTHER"}, {"mentions": [Jid.parse("6281234500001")]}],
)
async def test_the_same_key_for_another_request_is_refused(
    messaging: Messaging, change: dict[str, Any]
) -> None:
    await messaging.send()
    log = len(messaging.store.log)
    with pytest.raises(IdempotencyMismatch, match="different request"):
        await messaging.send(**change)
    assert len(messaging.store.log) == log


async def test_another_key_or_no_key_sends_again(messaging: Messaging) -> None:
    await messaging.send(key="k1")
    await messaging.send(key="k2")
    await messaging.send(key=None)
    await messaging.send(key=None)
    assert len(messaging.messages()) == 8


async def test_after_its_time_to_live_the_key_is_new_and_renewed(messaging: Messaging) -> None:
    first = await messaging.send()
    messaging.clock.advance(hours=24)
    second = await messaging.send(text="a new request")
    assert {o.message_id for o in second}.isdisjoint({o.message_id for o in first})
    record = messaging.idempotency()
    assert record.recorded_at == messaging.clock.now() and len(messaging.messages()) == 4
    assert messaging.store.kinds(record.id) == ["Recorded", "Renewed"]
    assert await messaging.send(text="a new request") == second  # the renewed key replays


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_TEXT + 1)])
async def test_empty_or_over_long_text_is_refused(messaging: Messaging, text: str) -> None:
    log = len(messaging.store.log)
    with pytest.raises(InvalidValue) as refused:
        await messaging.send(text=text)
    assert refused.value.field == "message"
    assert len(messaging.store.log) == log


async def test_a_session_that_is_not_open_refuses_to_send() -> None:
    without_runtime = Messaging()
    with pytest.raises(SessionNotOpen, match="session is open"):  # no runtime: the record's status
        await without_runtime.send()
    not_logged_in = await Messaging(open_=False).with_runtime()
    with pytest.raises(SessionNotOpen, match="session is created") as refused:
        await not_logged_in.send()
    assert refused.value.status == "created"
    assert not_logged_in.messages() == [] and without_runtime.messages() == []


async def test_a_full_queue_refuses_the_whole_request() -> None:
    messaging = await Messaging(max_size=3).with_runtime()
    await messaging.send(key=None)
    with pytest.raises(QueueIsFull):
        await messaging.send(key="k2")  # two more do not fit in three
    assert len(messaging.messages()) == 2
