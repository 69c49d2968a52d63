"""The webhook dispatcher against in-memory fakes of its ports (no database, no network).

Time is fake: ``FakeClock.sleep`` (tests/fakes.py) records the delay, advances the clock and
yields once, so back-off, cool-off and breaker waits cost nothing and are asserted exactly. Only the
dispatcher's own loader and sweep timers run on real time; tests poll the fakes with ``until``.

The last section holds regression tests of defects found this way (and fixed).
"""

from __future__ import annotations

import asyncio
import types
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest

from tests.fakes import FakeClock
from warest.app import webhook_dispatch
from warest.app.webhook_dispatch import (
    LANE_CAP,
    Answer,
    Delivery,
    DeliveryPolicy,
    Dispatcher,
    Health,
    Outcome,
    Target,
)

SECRET = "test-secret-0123456789abcdef"
T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def endpoint(name: str) -> Target:
    return Target(uuid5(NAMESPACE_URL, f"endpoint:{name}"), f"https://{name}.example/hook", (SECRET,), True)


A = endpoint("a")
B = endpoint("b")
DEFAULT = endpoint("default")  # never in the store: the dispatcher is given it

OK = Answer(200, 3)
BUSY = Answer(503, 3, {"Retry-After": "1"})


def session_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"session:{name}")


def delivery(
    queue_id: int,
    to: Target = A,
    session: str = "s1",
    *,
    attempts: int = 0,
    next_attempt_at: datetime | None = None,
) -> Delivery:
    """A pending delivery ``q<queue_id>`` (its position is its queue id)."""
    return Delivery(
        queue_id=queue_id,
        endpoint_id=to.id,
        position=queue_id,
        delivery_id=f"q{queue_id}",
        session_id=session_id(session),
        event="message_received",
        event_id=f"evt-{queue_id}",
        seq=queue_id,
        ts=1_735_732_800_000 + queue_id,
        registry="admin",
        session=session,
        label="Main",
        username="admin",
        body=b'{"event":"message_received","q":%d}' % queue_id,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
    )


def policy(**overrides: Any) -> DeliveryPolicy:
    """Small numbers; breaker out of the way and no periodic sweep unless a test asks."""
    base = DeliveryPolicy(
        timeout_s=1.0,
        retries=3,
        backoff_ms=100,
        jitter_ms=0,
        breaker_failures=1000,
        breaker_open_s=30.0,
        cooloff_s=50.0,
        sweep_s=60.0,
    )
    return replace(base, **overrides)


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


def dedup(ids: Iterable[str]) -> list[str]:
    """Consecutive repeats (retries) collapsed: the order in which deliveries went out."""
    out: list[str] = []
    for item in ids:
        if not out or out[-1] != item:
            out.append(item)
    return out


# -- fakes ---------------------------------------------------------------------------------


@dataclass
class Row:
    delivery: Delivery
    status: str = "pending"


class FakeStore:
    """``DeliveryStore`` in memory. Reads take their snapshot, then yield ``latency`` times
    (a query's round trip); ``lane_gate`` holds ``lane_after`` answers after the snapshot."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self.rows: dict[tuple[UUID, int], Row] = {}
        self.targets = {t.id: t for t in targets}
        self.initial_health: dict[UUID, Health] = {}
        self.saved_health: dict[UUID, Health] = {}
        self.health_log: list[tuple[UUID, Health]] = []
        self.batches: list[list[Outcome]] = []
        self.actions: dict[tuple[UUID, int], list[dict[str, Any]]] = {}
        self.loaded: list[int] = []  # queue ids handed out by pending_after
        self.lane_reads: list[tuple[UUID | None, UUID, int]] = []
        self.lane_gate: asyncio.Event | None = None
        self.stall_first_record = False
        self.stalled = False
        self.latency = 1
        self.record_latency = 1

    # test side

    def add(self, *deliveries: Delivery) -> None:
        for d in deliveries:
            self.rows[(d.endpoint_id, d.position)] = Row(d)

    def row(self, queue_id: int) -> Row:
        return next(r for r in self.rows.values() if r.delivery.queue_id == queue_id)

    def set_enabled(self, target: Target, enabled: bool) -> None:
        self.targets[target.id] = replace(self.targets[target.id], enabled=enabled)

    def _pending(self) -> list[Delivery]:
        return sorted(
            (r.delivery for r in self.rows.values() if r.status == "pending"), key=lambda d: d.queue_id
        )

    async def _wait(self, times: int) -> None:
        for _ in range(times):
            await asyncio.sleep(0)

    # the port

    async def pending_after(self, queue_id: int, limit: int) -> list[Delivery]:
        page = [d for d in self._pending() if d.queue_id > queue_id][:limit]
        self.loaded.extend(d.queue_id for d in page)
        await self._wait(self.latency)
        return page

    async def lane_after(
        self, endpoint_id: UUID | None, session_id: UUID, queue_id: int, limit: int
    ) -> list[Delivery]:
        self.lane_reads.append((endpoint_id, session_id, queue_id))
        page = [
            d
            for d in self._pending()
            if d.session_id == session_id
            and d.queue_id > queue_id
            and (endpoint_id is None or d.endpoint_id == endpoint_id)
        ][:limit]
        await self._wait(self.latency)
        if self.lane_gate is not None:
            await self.lane_gate.wait()
        return page

    async def unheld_lanes(self, upto: int) -> list[tuple[UUID, UUID]]:
        def usable(endpoint_id: UUID) -> bool:  # as the real store: endpoint enabled, or the default
            t = self.targets.get(endpoint_id)
            return t is None or (t.enabled and not t.removed)

        lanes = sorted(
            {
                (d.endpoint_id, d.session_id)
                for d in self._pending()
                if d.queue_id <= upto and usable(d.endpoint_id)
            }
        )
        await self._wait(self.latency)
        return lanes

    async def target(self, endpoint_id: UUID) -> Target | None:
        await self._wait(self.latency)
        return self.targets.get(endpoint_id)

    async def record(self, outcomes: list[Outcome]) -> None:
        if self.stall_first_record and not self.stalled:
            self.stalled = True
            await asyncio.Event().wait()  # a database that never answers (until cancelled)
        await self._wait(self.record_latency)
        self.batches.append(list(outcomes))
        for o in outcomes:
            row = self.rows[(o.endpoint_id, o.position)]
            row.status = o.status
            row.delivery = replace(row.delivery, attempts=o.attempt, next_attempt_at=o.next_attempt_at)

    async def record_actions(self, endpoint_id: UUID, position: int, report: list[dict[str, Any]]) -> None:
        self.actions[(endpoint_id, position)] = report

    async def health(self) -> dict[UUID, Health]:
        stored = self.initial_health | self.saved_health
        return {k: replace(v) for k, v in stored.items()}

    def reset_health(self, endpoint_id: UUID) -> None:
        """What the API's reset does to the stored row."""
        row = self.saved_health[endpoint_id]
        self.saved_health[endpoint_id] = replace(row, failures=0, open_until=None, cooloff_until=None)

    async def save_health(self, endpoint_id: UUID, health: Health) -> None:
        self.health_log.append((endpoint_id, replace(health)))
        self.saved_health[endpoint_id] = replace(health)


@dataclass(frozen=True)
class Post:
    url: str
    session: str
    delivery_id: str
    attempt: int
    headers: dict[str, str]
    body: bytes
    at: datetime


class FakeSender:
    """Answers from per-key queues (key: a URL or a session name; URL first), then the
    key's ``always`` answer, else 200. ``hold`` keeps one attempt in flight until released."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.posts: list[Post] = []
        self.scripts: dict[str, deque[Answer]] = {}
        self.fallback: dict[str, Answer] = {}
        self.holds: dict[tuple[str, int], asyncio.Event] = {}
        self.held: set[tuple[str, int]] = set()
        self.lane_in_flight: Counter[tuple[str, str]] = Counter()
        self.lane_max: Counter[tuple[str, str]] = Counter()
        self.session_in_flight: Counter[str] = Counter()
        self.session_max: Counter[str] = Counter()
        self.yields = 5

    def script(self, key: str, *answers: Answer) -> None:
        self.scripts.setdefault(key, deque()).extend(answers)

    def always(self, key: str, answer: Answer) -> None:
        self.fallback[key] = answer

    def hold(self, delivery_id: str, attempt: int = 1) -> asyncio.Event:
        event = self.holds[(delivery_id, attempt)] = asyncio.Event()
        return event

    def ids(self, *, url: str | None = None, session: str | None = None) -> list[str]:
        return [
            p.delivery_id
            for p in self.posts
            if (url is None or p.url == url) and (session is None or p.session == session)
        ]

    def _answer(self, url: str, session: str) -> Answer:
        for key in (url, session):
            queue = self.scripts.get(key)
            if queue:
                return queue.popleft()
        for key in (url, session):
            if key in self.fallback:
                return self.fallback[key]
        return OK

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
        session = headers["x-warest-session"]
        key = (headers["webhook-id"], int(headers["x-warest-delivery-attempt"]))
        self.posts.append(Post(url, session, key[0], key[1], dict(headers), body, self.clock.now()))
        answer = self._answer(url, session)
        lane = (url, session)
        self.lane_in_flight[lane] += 1
        self.lane_max[lane] = max(self.lane_max[lane], self.lane_in_flight[lane])
        self.session_in_flight[session] += 1
        self.session_max[session] = max(self.session_max[session], self.session_in_flight[session])
        try:
            hold = self.holds.get(key)
            if hold is not None:
                self.held.add(key)
                await hold.wait()
            for _ in range(self.yields):
                await asyncio.sleep(0)
            return answer
        finally:
            self.lane_in_flight[lane] -= 1
            self.session_in_flight[session] -= 1


class FakeControl:
    """``EndpointControl``: records the call and disables the endpoint in the store."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.calls: list[tuple[UUID, str]] = []

    async def disable_for_delivery(self, endpoint_id: UUID, reason: str) -> None:
        self.calls.append((endpoint_id, reason))
        self.store.set_enabled(self.store.targets[endpoint_id], False)
        await asyncio.sleep(0)


REPORT = [{"path": "0", "kind": "text", "ok": True, "error": None, "message_id": "M1"}]


class FakeActions:
    """``ActionsHandler``: a reply ``{"actions": ...}`` reports ``REPORT``, ``{"none": ...}``
    runs and reports nothing, an empty body has no actions at all."""

    def __init__(self) -> None:
        self.accepted: list[tuple[Delivery, Answer]] = []

    def accept(self, delivery: Delivery, answer: Answer) -> Awaitable[list[dict[str, Any]] | None] | None:
        self.accepted.append((delivery, answer))
        if not answer.body:
            return None

        async def run() -> list[dict[str, Any]] | None:
            await asyncio.sleep(0)
            return REPORT if b"actions" in answer.body else None

        return run()


class Harness:
    def __init__(
        self,
        policy_: DeliveryPolicy | None = None,
        *,
        default: Target | None = None,
        actions: FakeActions | None = None,
    ) -> None:
        self.clock = FakeClock(T0)
        self.store = FakeStore([A, B])
        self.sender = FakeSender(self.clock)
        self.control = FakeControl(self.store)
        self.dispatcher = Dispatcher(
            self.store,
            self.sender,
            self.control,
            policy_ or policy(),
            default=default,
            actions=actions,
            now=self.clock.now,
            sleep=self.clock.sleep,
        )

    async def __aenter__(self) -> Harness:
        await self.dispatcher.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_or_fail(self.dispatcher)

    def add(self, *deliveries: Delivery) -> None:
        self.store.add(*deliveries)
        self.dispatcher.wake()

    def status(self, queue_id: int) -> str:
        return self.store.row(queue_id).status

    def statuses(self, *queue_ids: int) -> set[str]:
        return {self.status(q) for q in queue_ids}

    def outcomes(self, queue_id: int) -> list[Outcome]:
        position = self.store.row(queue_id).delivery.position
        return [o for batch in self.store.batches for o in batch if o.position == position]


async def stop_or_fail(dispatcher: Dispatcher, timeout: float = 3.0) -> None:
    """``dispatcher.stop()``; if it hangs, cancel its tasks until they end (nothing leaks into
    the next test) and fail."""
    stopping = asyncio.ensure_future(dispatcher.stop())
    done, _ = await asyncio.wait({stopping}, timeout=timeout)
    if done:
        await stopping
        return
    stuck = [t.get_name() for t in dispatcher._tasks if not t.done()]
    for _ in range(100):
        if stopping.done():
            break
        lanes = [lane.task for lane in dispatcher._lanes.values() if lane.task is not None]
        for task in (*dispatcher._tasks, *lanes, *dispatcher._background):
            if not task.done():
                task.cancel()
        await asyncio.sleep(0.01)
    await stopping
    raise AssertionError(f"Dispatcher.stop() hung: {stuck} ignored their cancellation")


# -- order and lanes -----------------------------------------------------------------------


async def test_a_lane_posts_in_queue_order_one_at_a_time_while_another_session_goes_on() -> None:
    async with Harness(policy(retries=10)) as h:
        h.sender.script("s1", BUSY, BUSY, BUSY)  # s1's receiver fails three times ...
        release = h.sender.hold("q1", attempt=4)  # ... and then hangs on to the fourth attempt
        h.sender.script("s2", OK, BUSY)  # s2's second delivery needs a retry
        h.add(
            delivery(1, A, "s1"),
            delivery(2, A, "s2"),
            delivery(3, A, "s1"),
            delivery(4, A, "s2"),
            delivery(5, A, "s2"),
            delivery(6, A, "s1"),
        )
        await until(lambda: h.statuses(2, 4, 5) == {"delivered"}, what="s2 delivered")
        await until(lambda: ("q1", 4) in h.sender.held, what="s1's fourth attempt")

        assert h.sender.ids(session="s1") == ["q1"] * 4  # nothing behind q1 went out
        assert h.statuses(1, 3, 6) == {"pending"}
        assert h.sender.ids(session="s2") == ["q2", "q4", "q4", "q5"]

        release.set()
        await until(lambda: h.statuses(1, 3, 6) == {"delivered"}, what="s1 delivered")

    assert h.sender.ids(session="s1") == ["q1", "q1", "q1", "q1", "q3", "q6"]
    assert [p.attempt for p in h.sender.posts if p.delivery_id == "q1"] == [1, 2, 3, 4]
    assert h.sender.lane_max[(A.url, "s1")] == 1
    assert h.sender.lane_max[(A.url, "s2")] == 1


async def test_without_parallel_targets_a_sessions_endpoints_share_one_lane() -> None:
    async with Harness(policy(parallel_targets=False)) as h:
        h.sender.script(A.url, BUSY)  # A's first answer fails: B's next delivery waits for it
        h.add(
            delivery(1, A),
            delivery(2, B),
            delivery(3, A),
            delivery(4, B),
            delivery(5, B),
            delivery(6, A),
        )
        await until(lambda: h.statuses(1, 2, 3, 4, 5, 6) == {"delivered"})

    assert h.sender.ids() == ["q1", "q1", "q2", "q3", "q4", "q5", "q6"]
    assert h.sender.session_max["s1"] == 1


async def test_with_parallel_targets_a_sessions_endpoints_do_not_wait_for_each_other() -> None:
    async with Harness(policy(parallel_targets=True)) as h:
        h.sender.script(A.url, BUSY)
        a_stuck = h.sender.hold("q1", attempt=2)  # A: a failure, then a hanging retry
        b_last = h.sender.hold("q5")
        h.add(
            delivery(1, A),
            delivery(2, B),
            delivery(3, A),
            delivery(4, B),
            delivery(5, B),
            delivery(6, A),
        )
        await until(lambda: {("q1", 2), ("q5", 1)} <= h.sender.held, what="both endpoints in flight")
        await until(lambda: h.statuses(2, 4) == {"delivered"}, what="B went on while A was failing")

        assert h.statuses(1, 3, 6) == {"pending"}
        assert h.sender.session_max["s1"] == 2  # one post per endpoint at the same time

        a_stuck.set()
        b_last.set()
        await until(lambda: h.statuses(1, 2, 3, 4, 5, 6) == {"delivered"})

    assert h.sender.ids(url=A.url) == ["q1", "q1", "q3", "q6"]
    assert h.sender.ids(url=B.url) == ["q2", "q4", "q5"]
    assert h.sender.lane_max[(A.url, "s1")] == h.sender.lane_max[(B.url, "s1")] == 1


async def test_a_lane_longer_than_its_cap_is_read_back_from_the_store_in_order() -> None:
    total = LANE_CAP + 10
    async with Harness() as h:
        first = h.sender.hold("q1")
        h.add(*(delivery(q) for q in range(1, total + 1)))
        await until(lambda: ("q1", 1) in h.sender.held)
        # more arrive while the lane is full and busy: offered, dropped, read back later
        h.add(*(delivery(q) for q in range(total + 1, total + 11)))
        await until(lambda: total + 10 in h.store.loaded, what="the loader saw the late ones")
        first.set()
        await until(lambda: h.statuses(*range(1, total + 11)) == {"delivered"}, what="all delivered")

    assert h.sender.ids() == [f"q{q}" for q in range(1, total + 11)]
    lane = (A.id, session_id("s1"))
    assert (*lane, LANE_CAP) in h.store.lane_reads  # the lane read back after its 64th


@pytest.mark.parametrize("parallel", [True, False])
async def test_concurrent_loads_and_sweeps_never_post_a_delivery_twice(parallel: bool) -> None:
    async with Harness(policy(parallel_targets=parallel, sweep_s=0.005)) as h:
        h.store.latency = 2
        h.store.record_latency = 3
        h.sender.yields = 2
        stop = asyncio.Event()

        async def chaos() -> None:
            while not stop.is_set():
                h.dispatcher.wake()
                h.dispatcher.rescan()
                await asyncio.sleep(0)

        task = asyncio.create_task(chaos())
        expected: list[str] = []
        q = 0
        try:
            for round_ in range(8):
                batch: list[Delivery] = []
                for session in ("s1", "s2", "s3"):
                    for to in (A, B):
                        many = (session, to) == ("s1", A) and round_ == 0
                        for _ in range(LANE_CAP + 20 if many else 4):
                            q += 1
                            batch.append(delivery(q, to, session))
                h.add(*batch)
                expected += [d.delivery_id for d in batch]
                await asyncio.sleep(0.003)
            await until(lambda: h.statuses(*range(1, q + 1)) == {"delivered"}, what="all delivered")
        finally:
            stop.set()
            await task
            await asyncio.sleep(0.05)  # the last wake()/rescan() consumed (see the stop() bug below)

    counts = Counter(h.sender.ids())
    assert {i: n for i, n in counts.items() if n != 1} == {}, "posted more than once"
    assert sorted(counts) == sorted(expected)


# -- answers -------------------------------------------------------------------------------


async def test_a_retry_keeps_the_delivery_id_and_counts_attempts() -> None:
    async with Harness(policy(backoff_ms=100, jitter_ms=0)) as h:
        h.sender.script(A.url, Answer(503, 3), OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    first, second = h.sender.posts
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "q1"
    assert first.headers["x-warest-delivery-id"] == second.headers["x-warest-delivery-id"] == "q1"
    assert [first.headers["x-warest-delivery-attempt"], second.headers["x-warest-delivery-attempt"]] == [
        "1",
        "2",
    ]
    assert h.clock.sleeps == [0.1]
    assert second.at - first.at == timedelta(seconds=0.1)
    retry, done = h.outcomes(1)
    assert (retry.status, retry.attempt, retry.http_status) == ("pending", 1, 503)
    assert retry.next_attempt_at == retry.at + timedelta(seconds=0.1)
    assert (done.status, done.attempt, done.http_status, done.next_attempt_at) == ("delivered", 2, 200, None)
    assert h.store.row(1).delivery.attempts == 2


async def test_backoff_doubles_and_adds_the_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def randint(low: int, high: int) -> int:
        calls.append((low, high))
        return high  # the largest jitter

    monkeypatch.setattr(webhook_dispatch, "random", types.SimpleNamespace(randint=randint))
    async with Harness(policy(backoff_ms=100, jitter_ms=50, retries=3)) as h:
        h.sender.script(A.url, Answer(503, 3), Answer(500, 3), Answer(429, 3), OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    assert h.clock.sleeps == pytest.approx([0.15, 0.25, 0.45])
    assert calls == [(0, 50)] * 3


async def test_backoff_jitter_stays_within_its_bounds() -> None:
    async with Harness(policy(backoff_ms=100, jitter_ms=50, retries=5)) as h:
        h.sender.script(A.url, *[Answer(503, 3)] * 5, OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    assert len(h.clock.sleeps) == 5
    for n, slept in enumerate(h.clock.sleeps, start=1):
        base = 0.1 * 2 ** (n - 1)
        assert base <= slept <= base + 0.05, (n, slept)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7.0),
        (format_datetime(T0 + timedelta(seconds=30), usegmt=True), 30.0),
        ("86400", 3600.0),  # capped at an hour
    ],
)
async def test_retry_after_sets_the_wait(retry_after: str, expected: float) -> None:
    async with Harness(policy(backoff_ms=100, jitter_ms=300)) as h:
        h.sender.script(A.url, Answer(503, 3, {"Retry-After": retry_after}), OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    assert h.clock.sleeps == [expected]
    assert h.sender.posts[1].at - h.sender.posts[0].at == timedelta(seconds=expected)


async def test_after_the_last_retry_the_delivery_fails_and_the_lane_moves_on() -> None:
    async with Harness(policy(retries=2)) as h:
        timeout = Answer(None, 1000, error="timed out")
        h.sender.script(A.url, Answer(503, 3), timeout, Answer(502, 3))
        h.add(delivery(1), delivery(2))
        await until(lambda: h.statuses(1, 2) == {"failed", "delivered"})

    assert h.sender.ids() == ["q1", "q1", "q1", "q2"]
    assert h.status(1) == "failed"
    assert h.status(2) == "delivered"
    assert h.store.row(1).delivery.attempts == 3
    last = h.outcomes(1)[-1]
    assert (last.status, last.attempt, last.http_status, last.next_attempt_at) == ("failed", 3, 502, None)
    assert [o.error for o in h.outcomes(1)] == [None, "timed out", None]


@pytest.mark.parametrize("status", [400, 422, 302])
async def test_an_answer_that_is_not_retryable_fails_at_once(status: int) -> None:
    async with Harness() as h:
        h.sender.script(A.url, Answer(status, 3))
        h.add(delivery(1), delivery(2))
        await until(lambda: h.statuses(1, 2) == {"failed", "delivered"})

    assert h.sender.ids() == ["q1", "q2"]
    assert h.status(1) == "failed"
    assert h.store.row(1).delivery.attempts == 1
    assert h.clock.sleeps == []
    assert h.control.calls == []


@pytest.mark.parametrize("gone", [404, 410])
async def test_gone_disables_the_endpoint_and_its_deliveries_wait(gone: int) -> None:
    async with Harness(policy(sweep_s=0.02)) as h:
        h.sender.script(A.url, Answer(gone, 3))
        h.add(delivery(1, A), delivery(2, B), delivery(3, A), delivery(4, B))
        await until(lambda: h.statuses(2, 4) == {"delivered"} and bool(h.control.calls))
        await asyncio.sleep(0.1)  # several loads and sweeps: nothing goes to the disabled endpoint

        assert h.sender.ids(url=A.url) == ["q1"]
        assert h.sender.ids(url=B.url) == ["q2", "q4"]
        assert h.control.calls == [(A.id, f"the receiver answered {gone}")]
        assert h.statuses(1, 3) == {"pending"}
        assert h.store.row(1).delivery.attempts == 1
        assert h.store.row(3).delivery.attempts == 0


async def test_a_re_enabled_endpoint_resumes_its_pending_deliveries_on_rescan() -> None:
    async with Harness() as h:
        h.sender.script(A.url, Answer(410, 3))
        h.add(delivery(1), delivery(2))
        await until(lambda: bool(h.control.calls))
        await asyncio.sleep(0.05)
        h.store.set_enabled(A, True)
        h.dispatcher.rescan()  # what the API does after enabling
        await until(lambda: h.statuses(1, 2) == {"delivered"})

    assert h.sender.ids() == ["q1", "q1", "q2"]
    assert [p.attempt for p in h.sender.posts] == [1, 2, 1]


@pytest.mark.parametrize("gone", [404, 410])
async def test_gone_from_the_default_target_is_a_plain_failure(gone: int) -> None:
    async with Harness(default=DEFAULT) as h:
        h.sender.script(DEFAULT.url, Answer(gone, 3))
        h.add(delivery(1, DEFAULT), delivery(2, DEFAULT))
        await until(lambda: h.statuses(1, 2) == {"failed", "delivered"})

    assert h.sender.ids() == ["q1", "q2"]
    assert h.status(1) == "failed"
    assert h.store.row(1).delivery.attempts == 1
    assert h.control.calls == []


@pytest.mark.parametrize("refused", [401, 403])
async def test_unauthorised_starts_a_cooloff_before_the_next_attempt(refused: int) -> None:
    async with Harness(policy(cooloff_s=50.0)) as h:
        h.sender.script(A.url, Answer(refused, 3), OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    first, second = h.sender.posts
    assert second.at - first.at == timedelta(seconds=50)
    assert [first.attempt, second.attempt] == [1, 2]
    assert h.clock.waits() == [50.0]
    cooling = [hl for ep, hl in h.store.health_log if ep == A.id and hl.cooloff_until is not None]
    assert cooling
    assert cooling[0].cooloff_until == T0 + timedelta(seconds=50)
    assert h.store.saved_health[A.id].cooloff_until is None  # the success ended it


async def test_a_reset_of_the_stored_health_ends_a_cooloff_at_once() -> None:
    async with Harness(policy(cooloff_s=50.0)) as h:
        h.clock.endless_from = 50.0  # the cool-off does not end by itself
        h.sender.script(A.url, Answer(401, 3), OK)
        h.add(delivery(1))
        await until(lambda: 50.0 in h.clock.sleeps, what="the cool-off wait")
        h.dispatcher.rescan()  # a sweep without a reset changes nothing
        await asyncio.sleep(0.05)
        assert len(h.sender.posts) == 1 and h.status(1) == "pending"
        h.store.reset_health(A.id)
        h.dispatcher.rescan()
        await until(lambda: h.status(1) == "delivered")

    assert [p.attempt for p in h.sender.posts] == [1, 2]
    assert h.sender.posts[1].at == T0  # no time passed: the wait was cut short
    assert h.store.saved_health[A.id].cooloff_until is None


async def test_the_breaker_opens_after_failures_in_a_row_and_a_success_closes_it() -> None:
    rules = policy(breaker_failures=2, breaker_open_s=30.0, backoff_ms=1000, retries=5)
    async with Harness(rules) as h:
        h.sender.script(A.url, Answer(503, 3), Answer(503, 3), OK)
        h.add(delivery(1))
        await until(lambda: h.status(1) == "delivered")

    opened = [hl for ep, hl in h.store.health_log if ep == A.id and hl.open_until is not None]
    assert opened
    assert opened[0].failures == 2
    assert opened[0].open_until == T0 + timedelta(seconds=1 + 30)  # opened by the second failure
    # back-off 1 s, back-off 2 s, then the rest of the open circuit: the attempt waits for it
    assert h.clock.sleeps == [1.0, 2.0, 28.0]
    assert [p.at - T0 for p in h.sender.posts] == [timedelta(0), timedelta(seconds=1), timedelta(seconds=31)]
    closed = h.dispatcher.health_of(A.id)
    assert closed is not None
    assert (closed.failures, closed.open_until) == (0, None)
    assert (h.store.saved_health[A.id].failures, h.store.saved_health[A.id].open_until) == (0, None)
    assert h.dispatcher.state()["open_circuits"] == 0


async def test_stored_next_attempt_time_and_open_breaker_are_honoured_after_a_restart() -> None:
    h = Harness(policy(breaker_failures=3))
    h.store.initial_health[A.id] = Health(failures=3, open_until=T0 + timedelta(seconds=100))
    async with h:
        h.add(delivery(1, attempts=2, next_attempt_at=T0 + timedelta(seconds=30)), delivery(2, B))
        await until(lambda: h.statuses(1, 2) == {"delivered"})

    (post,) = [p for p in h.sender.posts if p.url == A.url]
    assert post.at == T0 + timedelta(seconds=100)
    assert post.attempt == 3
    assert h.sender.ids(url=B.url) == ["q2"]  # another endpoint: not held by A's breaker
    assert h.store.saved_health[A.id].failures == 0


# -- recorder and actions --------------------------------------------------------------------


async def test_outcomes_are_stored_in_batches_and_none_is_lost_at_stop() -> None:
    deliveries = [
        delivery(q, to, s) for q, (to, s) in enumerate([(A, "s1"), (B, "s1"), (A, "s2"), (B, "s2")] * 2, 1)
    ]
    async with Harness() as h:
        h.store.stall_first_record = True  # the first round trip never comes back
        h.add(*deliveries)
        await until(lambda: h.dispatcher.delivered == len(deliveries) and h.store.stalled)
        assert h.statuses(*range(1, len(deliveries) + 1)) == {"pending"}  # nothing stored yet

    assert h.statuses(*range(1, len(deliveries) + 1)) == {"delivered"}
    assert [len(b) for b in h.store.batches] == [len(deliveries)]  # one batch, written by stop()
    assert sorted(o.position for o in h.store.batches[0]) == list(range(1, len(deliveries) + 1))


async def test_outcomes_reach_the_store_while_running() -> None:
    async with Harness() as h:
        h.add(*(delivery(q, A if q % 2 else B, f"s{q % 3}") for q in range(1, 13)))
        await until(lambda: h.statuses(*range(1, 13)) == {"delivered"})
        recorded = sum(len(b) for b in h.store.batches)

    assert recorded == 12 == len(h.sender.posts)


async def test_a_2xx_answer_is_handed_to_the_actions_handler_and_its_report_stored() -> None:
    actions = FakeActions()
    with_actions = Answer(200, 3, {"content-type": "application/json"}, b'{"actions":[{"type":"text"}]}')
    nothing_to_report = Answer(200, 3, {}, b'{"none":true}')
    async with Harness(actions=actions) as h:
        h.sender.script(A.url, with_actions, OK, nothing_to_report, Answer(400, 3))
        h.add(delivery(1), delivery(2), delivery(3), delivery(4))
        await until(lambda: h.statuses(1, 2, 3, 4) == {"delivered", "failed"})
        await until(lambda: (A.id, 1) in h.store.actions, what="the report")

    assert actions.accepted == [
        (delivery(1), with_actions),
        (delivery(2), OK),
        (delivery(3), nothing_to_report),
    ]
    assert h.store.actions == {(A.id, 1): REPORT}


# -- regressions -----------------------------------------------------------------------------------


async def test_an_offer_made_while_a_lane_reads_back_is_not_overtaken() -> None:
    """Regression: a lane reading back from the store (overflow) used to reset ``overflow``
    from the page alone, forgetting a delivery the loader offered (and the lane dropped)
    during that read: the next offered delivery then went out before it."""
    total = LANE_CAP + 1
    async with Harness(policy(sweep_s=0.05)) as h:
        h.store.lane_gate = asyncio.Event()
        h.add(*(delivery(q) for q in range(1, total + 1)))
        await until(lambda: len(h.store.lane_reads) == 1, what="the lane reading back")  # snapshot: q65
        h.add(delivery(total + 1))  # q66: committed after the lane's snapshot, read by the loader
        await until(lambda: total + 1 in h.store.loaded)
        release = h.sender.hold(f"q{total}")
        h.store.lane_gate.set()
        await until(lambda: (f"q{total}", 1) in h.sender.held)
        h.add(delivery(total + 2))  # q67
        await until(lambda: total + 2 in h.store.loaded)
        release.set()
        await until(lambda: h.statuses(*range(1, total + 3)) == {"delivered"}, what="all delivered")

    assert h.sender.ids()[-3:] == [f"q{total}", f"q{total + 1}", f"q{total + 2}"]


async def test_after_re_enable_the_pending_deliveries_go_before_newer_ones() -> None:
    """Regression: after a 410 the lane parks with deliveries pending behind the loader's
    cursor; a lane the loader then created for a newer delivery used to send it first. A
    parked lane's successor now reads the store from the start."""
    async with Harness(policy(sweep_s=0.05)) as h:
        h.sender.script(A.url, Answer(410, 3))
        h.add(delivery(1), delivery(2))
        await until(lambda: bool(h.control.calls))
        await asyncio.sleep(0.05)
        h.store.set_enabled(A, True)
        h.store.add(delivery(3))  # an event after the re-enable
        h.dispatcher.rescan()
        await until(lambda: h.statuses(1, 2, 3) == {"delivered"})

    assert dedup(h.sender.ids()) == ["q1", "q2", "q3"]


async def test_shared_lane_goes_on_without_a_disabled_endpoint_and_keeps_order() -> None:
    """Regression: with ``parallel_targets=False`` a 410 from A used to end the session's
    lane for good (B's deliveries never went out). The shared lane now skips A's deliveries
    (they stay pending), keeps B in order, and delivers A's when A is enabled again."""
    async with Harness(policy(parallel_targets=False, sweep_s=0.02)) as h:
        h.sender.script(A.url, Answer(410, 3))
        h.add(delivery(1, A), delivery(2, B), delivery(3, B))
        await until(lambda: bool(h.control.calls))
        await asyncio.sleep(0.05)
        h.add(delivery(4, B))
        h.dispatcher.rescan()
        await until(lambda: h.statuses(2, 3, 4) == {"delivered"})
        assert h.status(1) == "pending"
        h.store.set_enabled(A, True)
        h.dispatcher.rescan()
        await until(lambda: h.status(1) == "delivered")

    assert h.sender.ids(url=B.url) == ["q2", "q3", "q4"]
    assert h.sender.ids(url=A.url) == ["q1", "q1"]  # the 410, then after the re-enable


@pytest.mark.parametrize("kick", ["wake", "rescan"])
async def test_stop_right_after_a_wake_or_rescan_returns(kick: str) -> None:
    """Regression (Python 3.11): the loops waited with ``asyncio.wait_for(event.wait(), ...)``,
    which swallows a cancellation when the event is set in the same iteration (CPython
    gh-86296): ``stop()`` right after ``wake()`` hung forever."""
    h = Harness()
    await h.dispatcher.start()
    await asyncio.sleep(0.05)  # both loops are waiting for their event
    getattr(h.dispatcher, kick)()
    await stop_or_fail(h.dispatcher, timeout=2.0)


async def test_a_failure_of_the_gateway_itself_retries_the_same_delivery_in_order() -> None:
    """The store failing (say, the database restarting) must not end the lane and let a
    newer delivery of the session overtake the one it was working on."""
    async with Harness() as h:
        real_target = h.store.target
        failures = {"left": 2}

        async def flaky_target(endpoint_id: Any) -> Any:
            if failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("database restarting")
            return await real_target(endpoint_id)

        h.store.target = flaky_target  # type: ignore[method-assign]
        h.add(delivery(1), delivery(2), delivery(3))
        await until(lambda: h.statuses(1, 2, 3) == {"delivered"})

    assert h.sender.ids() == ["q1", "q2", "q3"]
    assert h.clock.waits() == [1.0, 1.0]  # the lane waited after each failure
