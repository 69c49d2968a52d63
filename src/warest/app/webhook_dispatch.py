"""The webhook dispatcher: delivers the outbox at least once, in order per session.

Work is split into *lanes*: one per (endpoint, session), or one per session when
``parallel_targets`` is off. A lane delivers its deliveries one at a time in queue order:
a session's next event waits until the previous one is delivered or given up, while
every other lane goes on. The loader reads new pending deliveries in queue order (the
outbox assigns queue ids in log order, under the outbox's lock) and hands them to lanes;
a lane holds at most ``LANE_CAP`` of them in memory and reads the rest back itself, so a
receiver that is down for days costs no memory. A periodic sweep adopts pending
deliveries that no lane holds (a re-enabled endpoint, a replay).

Per attempt: 2xx delivered; 404/410 disable the endpoint (kept, visible, re-enabled by
the API; its deliveries wait); 401/403 start a cool-off for the endpoint; 429, 5xx,
timeouts and network errors are retried with exponential back-off and jitter, honouring
``Retry-After``; other answers (3xx, 4xx) fail at once. After the last retry the
delivery is failed and the lane moves on. A circuit breaker per endpoint opens after
``breaker_failures`` failures in a row; its lanes wait ``breaker_open_s`` (spending no
attempt), then try again. Breaker, cool-off, attempts and next attempt times are stored: all of
it survives a restart. An operator's reset of an endpoint's health (the API clears the stored
row) is noticed by the sweep: the endpoint's pause ends and its waiting lanes go on at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from uuid import UUID

from warest.app.webhook_events import SessionInfo
from warest.app.webhook_signing import standard_signatures, warest_signature_headers

log = logging.getLogger("warest.webhooks")

LANE_CAP = 64
TARGET_TTL_S = 1.0  # how long an endpoint read from the store is used
DISABLED_TTL_S = 5.0  # an endpoint this process disabled, until the outbox has seen it
FINISHED_MEMORY = 100_000
RECORD_EVERY_S = 0.02  # outcomes are stored at most this long after the attempt
LOAD_PAGE = 2000
MAX_RETRY_AFTER_S = 3600.0


# -- ports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A pending delivery with the event it carries (body rendered by the outbox)."""

    queue_id: int
    endpoint_id: UUID
    position: int
    delivery_id: str
    session_id: UUID
    event: str
    event_id: str
    seq: int
    ts: int
    registry: str
    session: str
    label: str
    username: str | None
    body: bytes
    attempts: int
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class Target:
    """Where and how an endpoint is delivered to, as the dispatcher needs it."""

    id: UUID
    url: str
    secrets: tuple[str, ...]  # in clear: the current one first
    enabled: bool
    removed: bool = False


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (timeout, connection error, refused by egress)
    latency_ms: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


@dataclass
class Health:
    failures: int = 0
    open_until: datetime | None = None
    cooloff_until: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What an attempt changed: one attempt row and the delivery's new state."""

    endpoint_id: UUID
    position: int
    status: str  # pending, delivered, failed
    attempt: int
    at: datetime
    http_status: int | None
    latency_ms: int
    error: str | None
    next_attempt_at: datetime | None


class DeliveryStore(Protocol):
    async def pending_after(self, queue_id: int, limit: int) -> list[Delivery]: ...
    async def lane_after(
        self, endpoint_id: UUID | None, session_id: UUID, queue_id: int, limit: int
    ) -> list[Delivery]:
        """Pending deliveries of a lane (``endpoint_id`` None: every endpoint of the session)."""

    async def unheld_lanes(self, upto: int) -> list[tuple[UUID, UUID]]:
        """(endpoint, session) pairs with pending deliveries whose queue id is <= ``upto``."""

    async def target(self, endpoint_id: UUID) -> Target | None: ...
    async def record(self, outcomes: list[Outcome]) -> None: ...
    async def record_actions(
        self, endpoint_id: UUID, position: int, report: list[dict[str, Any]]
    ) -> None: ...
    async def health(self) -> dict[UUID, Health]:
        """The stored health of every endpoint (what the dispatcher saved, or an operator reset)."""

    async def save_health(self, endpoint_id: UUID, health: Health) -> None: ...


class Sender(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer: ...


class EndpointControl(Protocol):
    async def disable_for_delivery(self, endpoint_id: UUID, reason: str) -> None:
        """Records that delivery disabled the endpoint (an event in the log)."""


class ActionsHandler(Protocol):
    def accept(self, delivery: Delivery, answer: Answer) -> Awaitable[list[dict[str, Any]] | None] | None:
        """Starts the actions of a 2xx reply, if it has any; the result is the report."""


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = 10.0
    retries: int = 3
    backoff_ms: int = 800
    jitter_ms: int = 300
    parallel_targets: bool = True
    breaker_failures: int = 5
    breaker_open_s: float = 60.0
    cooloff_s: float = 900.0
    max_in_flight: int = 256
    sha2: str = "256"
    sweep_s: float = 5.0
    user_agent: str = "WAREst/1 (webhook) warest"

    def backoff_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
        jitter = random.randint(0, self.jitter_ms) if self.jitter_ms else 0  # noqa: S311 (not crypto)
        return float(self.backoff_ms * 2 ** (attempt - 1) + jitter) / 1000


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def signed_headers(
    body: bytes,
    message_id: str,
    event: str,
    ts_ms: int,
    about: SessionInfo,
    secrets: Sequence[str],
    now: datetime,
    *,
    sha2: str,
    user_agent: str,
) -> dict[str, str]:
    """The original's ``X-WAREST-*`` headers and Standard Webhooks' ``webhook-*`` headers of
    one request (a delivery or a preflight).

    With a rotated secret in its grace period both signatures are sent: the newest alone in
    ``X-WAREST-Signature`` (the original's format, which its receivers parse as one value)
    and the previous one in ``X-WAREST-Signature-Previous``; both, space-separated, in
    ``webhook-signature`` (as the spec says).
    """
    seconds = int(now.timestamp())
    return {
        "content-type": "application/json",
        "user-agent": user_agent,
        **warest_signature_headers(body, secrets, about.username, sha2),
        "x-warest-timestamp": str(ts_ms),
        "x-warest-event": event,
        "x-warest-session": about.name,
        "x-warest-registry": about.registry,
        "x-warest-label": header_safe(about.label),
        "x-warest-username": about.username or "",
        "x-warest-version": "1",
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": standard_signatures(message_id, seconds, body, secrets),
    }


def request_headers(
    delivery: Delivery, target: Target, attempt: int, now: datetime, policy: DeliveryPolicy
) -> dict[str, str]:
    """The headers of one attempt of a delivery."""
    about = SessionInfo(
        delivery.session_id, delivery.session, delivery.registry, delivery.label, delivery.username
    )
    headers = signed_headers(
        delivery.body, delivery.delivery_id, delivery.event, delivery.ts, about, target.secrets, now,
        sha2=policy.sha2, user_agent=policy.user_agent,
    )  # fmt: skip
    headers["x-warest-event-id"] = delivery.event_id
    headers["x-warest-delivery-id"] = delivery.delivery_id
    headers["x-warest-delivery-attempt"] = str(attempt)
    headers["x-warest-sequence"] = str(delivery.seq)
    return headers


def header_safe(value: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in value)


# -- the dispatcher ------------------------------------------------------------------------


class _Lane:
    """The deliveries of one (endpoint, session), or of one session (``endpoint_id`` None),
    in queue order.

    ``overflow``: pending deliveries exist in the store beyond what the lane holds; it
    reads them back (queue id > ``tail``) when its queue drains, and offers made meanwhile
    are dropped (``dropped``): they are in the store. ``blocked``: in a shared lane, the
    endpoints found disabled (their deliveries stay pending and are skipped). ``reset``:
    read everything pending again from the start (a blocked endpoint was enabled).
    """

    def __init__(self, endpoint_id: UUID | None, session_id: UUID) -> None:
        self.endpoint_id = endpoint_id
        self.session_id = session_id
        self.queue: deque[Delivery] = deque()
        self.tail = 0
        self.overflow = False
        self.dropped = False
        self.reset = False
        self.blocked: set[UUID] = set()
        self.task: asyncio.Task[None] | None = None

    def offer(self, delivery: Delivery) -> None:
        if delivery.queue_id <= self.tail:
            return
        if self.overflow or len(self.queue) >= LANE_CAP:
            self.overflow = self.dropped = True  # read back from the store once the queue drains
            return
        self.queue.append(delivery)
        self.tail = delivery.queue_id

    def restart(self) -> None:
        """Forget what is held and read every pending delivery again, in queue order."""
        self.reset = False
        self.queue.clear()
        self.tail = 0
        self.overflow = True
        self.blocked.clear()


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        sender: Sender,
        control: EndpointControl,
        policy: DeliveryPolicy,
        *,
        default: Target | None = None,
        actions: ActionsHandler | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._sender = sender
        self._control = control
        self.policy = policy
        self._default = default
        self._actions = actions
        self._now = now
        self._sleep = sleep
        self._lanes: dict[tuple[UUID | None, UUID], _Lane] = {}
        self._parked: set[tuple[UUID | None, UUID]] = set()  # lanes that stopped with deliveries pending
        self._cursor = 0
        self._wake = asyncio.Event()
        self._sweep = asyncio.Event()
        self._loading = asyncio.Lock()
        self._health: dict[UUID, Health] = {}
        self._saved: dict[UUID, _Pause] = {}  # the pause of each endpoint as last stored by this dispatcher
        self._resumed: dict[UUID, asyncio.Event] = {}  # set when an endpoint's pause is reset
        self._targets: dict[UUID, tuple[float, Target | None]] = {}  # endpoint -> (valid until, target)
        self._in_flight = asyncio.Semaphore(policy.max_in_flight)
        self._recorder = _Recorder(store)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.delivered = 0

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts (or starts again, after ``stop``) from the store's state: the pending
        deliveries are read from the beginning of the queue."""
        self._cursor = 0
        self._parked.clear()
        self._targets.clear()
        self._health = await self._store.health()
        self._saved = {endpoint: _Pause.of(h) for endpoint, h in self._health.items()}
        self._tasks = [
            asyncio.create_task(self._load_loop(), name="webhook-loader"),
            asyncio.create_task(self._sweep_loop(), name="webhook-sweep"),
            asyncio.create_task(self._recorder.run(), name="webhook-recorder"),
        ]

    async def stop(self) -> None:
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in (*self._tasks, *lanes, *self._background):
            task.cancel()
        await asyncio.gather(*self._tasks, *lanes, *self._background, return_exceptions=True)
        await self._recorder.flush()

    def wake(self) -> None:
        """New deliveries may be in the outbox (called when the outbox projection advances)."""
        self._wake.set()

    def rescan(self) -> None:
        """Pending deliveries may exist that no lane holds, or endpoints changed (enable,
        replay, redeliver): endpoints are read again and such deliveries adopted."""
        self._targets.clear()
        self._sweep.set()

    # -- loading ------------------------------------------------------------------------

    async def _load_loop(self) -> None:
        while True:
            try:
                await self._load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook loader failed; retrying")
                await self._sleep(1.0)
            await _wait(self._wake, 1.0)
            self._wake.clear()

    async def _load(self) -> None:
        """Offers new pending deliveries to their lanes (one load at a time: each page is
        offered once, in queue order)."""
        async with self._loading:
            await self._load_pages()

    async def _load_pages(self) -> None:
        while True:
            page = await self._store.pending_after(self._cursor, LOAD_PAGE)
            for delivery in page:
                self._offer(delivery)
            if page:
                self._cursor = page[-1].queue_id
            if len(page) < LOAD_PAGE:
                return

    def _lane_key(self, endpoint_id: UUID, session_id: UUID) -> tuple[UUID | None, UUID]:
        return (endpoint_id if self.policy.parallel_targets else None, session_id)

    def _offer(self, delivery: Delivery) -> None:
        if self._recorder.finished(delivery):
            return  # read while its outcome was being stored
        key = self._lane_key(delivery.endpoint_id, delivery.session_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._new_lane(key)
        lane.offer(delivery)
        self._ensure_running(key, lane)

    def _new_lane(self, key: tuple[UUID | None, UUID]) -> _Lane:
        lane = self._lanes[key] = _Lane(*key)
        if key in self._parked:  # older deliveries wait in the store: read them first
            self._parked.discard(key)
            lane.overflow = True
        return lane

    def _ensure_running(self, key: tuple[UUID | None, UUID], lane: _Lane) -> None:
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run_lane(key, lane), name="webhook-lane")

    async def _sweep_loop(self) -> None:
        while True:
            await _wait(self._sweep, self.policy.sweep_s)
            self._sweep.clear()
            try:
                await self._notice_resets()
                await self._adopt()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook sweep failed")

    async def _adopt(self) -> None:
        """Lanes for pending deliveries behind the loader's cursor that no lane holds.

        Outcomes are flushed first: a delivery a finished lane sent is then no longer
        pending in the store, so it is never picked up twice."""
        await self._load()
        await self._recorder.flush()
        for endpoint_id, session_id in await self._store.unheld_lanes(self._cursor):
            key = self._lane_key(endpoint_id, session_id)
            lane = self._lanes.get(key)
            if lane is not None and lane.task is not None and not lane.task.done():
                if endpoint_id in lane.blocked:
                    lane.reset = True  # a shared lane skipped this endpoint: enabled again
                continue  # otherwise it holds them or reads them back (overflow)
            self._parked.add(key)
            self._ensure_running(key, self._new_lane(key))

    # -- lanes --------------------------------------------------------------------------

    async def _run_lane(self, key: tuple[UUID | None, UUID], lane: _Lane) -> None:
        try:
            while await self._step(lane):
                pass
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            if lane.queue or lane.overflow:  # ended with deliveries pending (parked, stopped)
                self._parked.add(key)

    async def _step(self, lane: _Lane) -> bool:
        """Delivers the lane's next delivery; False when the lane ends. A failure of the
        gateway itself (the database, say) is logged and the same delivery retried: the
        lane keeps its order."""
        try:
            if lane.reset:
                lane.restart()
            if not lane.queue and lane.overflow:
                await self._read_back(lane)
            if not lane.queue:
                return False
            delivery = lane.queue[0]
            if delivery.endpoint_id not in lane.blocked and not await self._deliver(delivery):
                # The endpoint is disabled or removed: its deliveries wait in the store.
                if lane.endpoint_id is not None:
                    return False
                lane.blocked.add(delivery.endpoint_id)  # a shared lane goes on without it
            lane.queue.popleft()
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook lane of session %s failed; retrying in 1 s", lane.session_id)
            await self._sleep(1.0)
            return True

    async def _read_back(self, lane: _Lane) -> None:
        lane.dropped = False
        page = await self._store.lane_after(lane.endpoint_id, lane.session_id, lane.tail, LANE_CAP)
        for delivery in page:
            lane.tail = max(lane.tail, delivery.queue_id)
            if not self._recorder.finished(delivery):
                lane.queue.append(delivery)
        # Offers dropped during the read may be newer than the page: read again after it.
        lane.overflow = len(page) >= LANE_CAP or lane.dropped

    async def _target(self, endpoint_id: UUID) -> Target | None:
        if self._default is not None and endpoint_id == self._default.id:
            return self._default
        loop = asyncio.get_running_loop()
        cached = self._targets.get(endpoint_id)
        if cached is not None and loop.time() < cached[0]:
            return cached[1]
        target = await self._store.target(endpoint_id)
        self._targets[endpoint_id] = (loop.time() + TARGET_TTL_S, target)
        return target

    async def _deliver(self, delivery: Delivery) -> bool:
        """Attempts until delivered or given up; False when the endpoint cannot take it now."""
        attempt = delivery.attempts
        if delivery.next_attempt_at is not None:
            await self._wait_until(delivery.next_attempt_at)
        while True:
            target = await self._target(delivery.endpoint_id)
            if target is None or target.removed or not target.enabled:
                return False
            await self._wait_for_endpoint(target.id)
            attempt += 1
            now = self._now()
            headers = request_headers(delivery, target, attempt, now, self.policy)
            async with self._in_flight:
                answer = await self._sender.post(target.url, delivery.body, headers, self.policy.timeout_s)
            done, wait_s = await self._judge(delivery, target, attempt, answer)
            if done:
                return True
            if wait_s is None:
                return False
            await self._sleep(wait_s)

    async def _judge(
        self, delivery: Delivery, target: Target, attempt: int, answer: Answer
    ) -> tuple[bool, float | None]:
        """Records an attempt; returns (finished, seconds before the next attempt or None
        to leave the delivery pending)."""
        now = self._now()
        status = answer.status
        health = self._health.setdefault(target.id, Health())
        if status is not None and 200 <= status < 300:
            self._record(delivery, attempt, now, answer, "delivered", None)
            self.delivered += 1
            if health.failures or health.open_until or health.cooloff_until or health.last_success_at is None:
                health.failures, health.open_until, health.cooloff_until = 0, None, None
                health.last_success_at = now
                await self._save_health(target.id, health)
            self._start_actions(delivery, answer)
            return True, None
        error = answer.error or f"HTTP {status}"
        health.last_failure_at, health.last_error = now, error[:500]
        is_default = self._default is not None and target.id == self._default.id
        if status in (404, 410) and not is_default:
            self._record(delivery, attempt, now, answer, "pending", None)
            await self._control.disable_for_delivery(target.id, f"the receiver answered {status}")
            # Other lanes must not read it as enabled before the outbox has seen the event.
            disabled = Target(target.id, target.url, target.secrets, False, target.removed)
            self._targets[target.id] = (asyncio.get_running_loop().time() + DISABLED_TTL_S, disabled)
            await self._save_health(target.id, health)
            return False, None
        retryable = status is None or status == 429 or status >= 500 or status in (401, 403)
        if not retryable or attempt > self.policy.retries:
            self._record(delivery, attempt, now, answer, "failed", None)
            await self._count_failure(target.id, health, now)
            return True, None
        if status in (401, 403):
            health.cooloff_until = now + timedelta(seconds=self.policy.cooloff_s)
            wait = 0.0
        else:
            await self._count_failure(target.id, health, now)
            wait = self.policy.backoff_s(attempt, retry_after_s(answer.headers, now))
        self._record(delivery, attempt, now, answer, "pending", now + timedelta(seconds=wait))
        await self._save_health(target.id, health)
        return False, wait

    async def _count_failure(self, endpoint_id: UUID, health: Health, now: datetime) -> None:
        health.failures += 1
        if health.failures >= self.policy.breaker_failures:
            health.open_until = now + timedelta(seconds=self.policy.breaker_open_s)
            log.warning("webhook endpoint %s: circuit open until %s", endpoint_id, health.open_until)
        await self._save_health(endpoint_id, health)

    async def _save_health(self, endpoint_id: UUID, health: Health) -> None:
        pause = _Pause.of(health)  # what this call writes
        await self._store.save_health(endpoint_id, health)
        self._saved[endpoint_id] = pause

    async def _notice_resets(self) -> None:
        """Ends the pauses an operator reset (the API cleared the stored row, in any process).

        A reset is a stored row without failures, circuit or cool-off where this dispatcher
        last stored some, while it still holds some. A save of this dispatcher that is under
        way cannot look like one: the row then shows either what it stored before or what it
        is storing, and a save that clears the pause has cleared it in memory first."""
        for endpoint_id, stored in (await self._store.health()).items():
            mine, saved = self._health.get(endpoint_id), self._saved.get(endpoint_id)
            if mine is None or saved is None or _Pause.of(stored) or not saved or not _Pause.of(mine):
                continue
            mine.failures, mine.open_until, mine.cooloff_until = 0, None, None
            self._saved[endpoint_id] = _Pause.of(mine)
            log.info("webhook endpoint %s: failures, circuit and cool-off reset", endpoint_id)
            resumed = self._resumed.pop(endpoint_id, None)
            if resumed is not None:
                resumed.set()

    async def _wait_for_endpoint(self, endpoint_id: UUID) -> None:
        """Waits while the endpoint's circuit is open, then while it cools off; a reset ends
        the wait."""
        while (health := self._health.get(endpoint_id)) is not None:
            now = self._now()
            until = next(
                (u for u in (health.open_until, health.cooloff_until) if u is not None and u > now), None
            )
            if until is None:
                return
            resumed = self._resumed.setdefault(endpoint_id, asyncio.Event())
            sleeping = asyncio.ensure_future(self._sleep((until - now).total_seconds()))
            woken = asyncio.ensure_future(resumed.wait())
            try:
                await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                woken.cancel()

    async def _wait_until(self, when: datetime) -> None:
        delay = (when - self._now()).total_seconds()
        if delay > 0:
            await self._sleep(delay)

    def _record(
        self,
        delivery: Delivery,
        attempt: int,
        at: datetime,
        answer: Answer,
        status: str,
        next_at: datetime | None,
    ) -> None:
        self._recorder.add(
            Outcome(
                delivery.endpoint_id,
                delivery.position,
                status,
                attempt,
                at,
                answer.status,
                answer.latency_ms,
                answer.error,
                next_at,
            ),
            delivery.queue_id,
        )

    def _start_actions(self, delivery: Delivery, answer: Answer) -> None:
        if self._actions is None:
            return
        pending = self._actions.accept(delivery, answer)
        if pending is None:
            return

        async def finish() -> None:
            report = await pending
            if report is not None:
                await self._store.record_actions(delivery.endpoint_id, delivery.position, report)

        task = asyncio.create_task(finish(), name="webhook-actions")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- introspection (health endpoint, tests) ----------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "lanes": len(self._lanes),
            "cursor": self._cursor,
            "delivered": self.delivered,
            "open_circuits": sum(
                1 for h in self._health.values() if h.open_until and h.open_until > self._now()
            ),
        }

    def health_of(self, endpoint_id: UUID) -> Health | None:
        return self._health.get(endpoint_id)


@dataclass(frozen=True)
class _Pause:
    """What holds an endpoint back: failures in a row, an open circuit, a cool-off."""

    failures: int
    open_until: datetime | None
    cooloff_until: datetime | None

    @classmethod
    def of(cls, health: Health) -> _Pause:
        return cls(health.failures, health.open_until, health.cooloff_until)

    def __bool__(self) -> bool:
        return bool(self.failures or self.open_until or self.cooloff_until)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """``event.wait()`` for at most ``timeout`` seconds. (``asyncio.wait_for`` can swallow a
    cancellation on Python 3.11 when the event is set in the same iteration: gh-86296.)"""
    with suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


class _Recorder:
    """Stores outcomes in batches behind the lanes (one round trip per batch)."""

    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self._pending: list[Outcome] = []
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._finished: OrderedDict[tuple[UUID, int, int], None] = OrderedDict()

    def add(self, outcome: Outcome, queue_id: int) -> None:
        self._pending.append(outcome)
        if outcome.status != "pending":
            self._finished[(outcome.endpoint_id, outcome.position, queue_id)] = None
            if len(self._finished) > FINISHED_MEMORY:
                self._finished.popitem(last=False)
        self._ready.set()

    def finished(self, delivery: Delivery) -> bool:
        """Delivered or failed under this queue id: a read of the store that began before
        the outcome was stored may still show it pending (a replay gives a new queue id)."""
        return (delivery.endpoint_id, delivery.position, delivery.queue_id) in self._finished

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            await asyncio.sleep(RECORD_EVERY_S)  # gather a batch: one round trip for many outcomes
            self._ready.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook outcomes not recorded; retrying")
                await asyncio.sleep(0.5)
                self._ready.set()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await self._store.record(batch)
            except BaseException:
                self._pending[:0] = batch
                raise
