"""The outbound queue of a session: order, recording behind the sender, retries, closing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

from warest.app.engine import EngineError, NotConnected, OutboundText, SendResult
from warest.app.outbound import Job, OutboundQueue, RetryPolicy

NO_DELAY = RetryPolicy(max_retries=2, delay_ms=0, jitter=0.0, timeout_ms=1000)


class Engine:
    """Sends in order; a scripted error per text, consumed one attempt at a time."""

    def __init__(self, errors: dict[str, list[EngineError]] | None = None) -> None:
        self.sent: list[str] = []
        self.attempts: list[str] = []
        self._errors = errors or {}
        self._tried = asyncio.Event()

    async def attempted(self, count: int) -> None:
        """Until the engine has been tried ``count`` times in all."""
        while len(self.attempts) < count:
            self._tried.clear()
            await asyncio.wait_for(self._tried.wait(), 5)

    async def send(self, text: OutboundText) -> SendResult:
        self.attempts.append(text.text)
        self._tried.set()
        pending = self._errors.get(text.text)
        if pending:
            raise pending.pop(0)
        self.sent.append(text.text)
        return SendResult(wa_id=f"wa-{text.text}", sent_at=datetime.now(UTC))


class Recorder:
    """Records outcomes slowly (a commit each), noting what had been sent by then."""

    def __init__(self, engine: Engine, delay_s: float = 0.02) -> None:
        self.engine = engine
        self.delay_s = delay_s
        self.started: list[str] = []
        self.recorded: list[tuple[str, str | None, str | None, int]] = []
        self.sent_when_started: list[int] = []

    async def __call__(
        self, job: Job, result: SendResult | None, error: EngineError | None, attempts: int
    ) -> None:
        self.started.append(job.text.text)
        self.sent_when_started.append(len(self.engine.sent))
        await asyncio.sleep(self.delay_s)
        self.recorded.append(
            (job.text.text, result.wa_id if result else None, str(error) if error else None, attempts)
        )


def job(text: str) -> Job:
    return Job(uuid4(), OutboundText(to="62811@s.whatsapp.net", wa_id=f"l-{text}", text=text))


async def test_messages_leave_in_order_while_earlier_outcomes_are_still_recording() -> None:
    engine = Engine()
    recorder = Recorder(engine)
    queue = OutboundQueue("s", engine.send, recorder, NO_DELAY)
    queue.online()
    jobs = [job(str(i)) for i in range(5)]
    for j in jobs:
        assert queue.put(j)
    await asyncio.wait_for(asyncio.gather(*(j.done for j in jobs)), 5)
    texts = [str(i) for i in range(5)]
    assert engine.sent == texts
    assert recorder.started == texts  # saves submitted in the order of the sends
    assert [r[1] for r in recorder.recorded] == [f"wa-{t}" for t in texts]
    # The whole backlog went out before the first (slow) recording began: the sender does
    # not wait for the recorder (a queue recording each outcome in turn shows 1, 2, 3, ...).
    assert recorder.sent_when_started == [5, 5, 5, 5, 5]
    assert len(queue) == 0
    await queue.close()


async def test_the_same_message_is_queued_once() -> None:
    engine = Engine()
    queue = OutboundQueue("s", engine.send, Recorder(engine, 0), NO_DELAY)
    first = job("a")
    again = Job(first.message_id, first.text)
    assert queue.put(first) and not queue.put(again)
    assert first.message_id in queue and len(queue) == 1
    queue.online()
    await asyncio.wait_for(first.done, 5)
    assert engine.sent == ["a"] and first.message_id not in queue
    await queue.close()


async def test_a_retryable_error_is_retried_up_to_the_policy_then_recorded_failed() -> None:
    flaky = [EngineError("busy", retryable=True)]
    broken = [EngineError("busy", retryable=True) for _ in range(5)]
    engine = Engine({"flaky": flaky, "broken": broken, "refused": [EngineError("463", code="463")]})
    recorder = Recorder(engine, 0)
    queue = OutboundQueue("s", engine.send, recorder, NO_DELAY)
    queue.online()
    jobs = [job("flaky"), job("broken"), job("refused")]
    for j in jobs:
        queue.put(j)
    await asyncio.wait_for(asyncio.gather(*(j.done for j in jobs)), 5)
    assert recorder.recorded == [
        ("flaky", "wa-flaky", None, 2),
        ("broken", None, "busy", 3),  # the first attempt and max_retries=2 more
        ("refused", None, "463", 1),  # not retryable: one attempt
    ]
    await queue.close()


async def test_not_connected_waits_for_the_session_without_spending_a_retry() -> None:
    engine = Engine({"m": [NotConnected() for _ in range(4)]})
    recorder = Recorder(engine, 0)
    queue = OutboundQueue("s", engine.send, recorder, NO_DELAY)
    queue.online()
    j = job("m")
    queue.put(j)
    await engine.attempted(1)
    assert not queue.is_online  # the engine said so: the queue suspends
    for _ in range(3):  # each reconnect that proves false costs no retry
        queue.online()
        await engine.attempted(len(engine.attempts) + 1)
    assert engine.attempts == ["m"] * 4 and not j.done.done()
    queue.online()
    await asyncio.wait_for(j.done, 5)
    assert recorder.recorded == [("m", "wa-m", None, 1)]
    await queue.close()


async def test_close_records_the_outcomes_of_messages_already_sent() -> None:
    engine = Engine()
    recorder = Recorder(engine, 0.05)
    queue = OutboundQueue("s", engine.send, recorder, NO_DELAY)
    queue.online()
    jobs = [job(str(i)) for i in range(3)]
    for j in jobs:
        queue.put(j)
    await engine.attempted(3)
    assert not recorder.recorded  # all three are being recorded
    await queue.close()
    assert [r[0] for r in recorder.recorded] == ["0", "1", "2"]
    assert all(j.done.done() for j in jobs)


async def test_a_recording_failure_finishes_the_job_and_the_queue_goes_on() -> None:
    engine = Engine()
    calls: list[UUID] = []

    async def record(j: Job, result: SendResult | None, error: EngineError | None, attempts: int) -> None:
        calls.append(j.message_id)
        if len(calls) == 1:
            raise RuntimeError("database away")

    queue = OutboundQueue("s", engine.send, record, NO_DELAY)
    queue.online()
    first, second = job("a"), job("b")
    queue.put(first)
    queue.put(second)
    await asyncio.wait_for(asyncio.gather(first.done, second.done), 5)
    assert calls == [first.message_id, second.message_id] and engine.sent == ["a", "b"]
    assert len(queue) == 0
    await queue.close()
