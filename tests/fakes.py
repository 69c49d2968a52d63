"""In-memory fakes of the application's ports, for unit and service tests without PostgreSQL.

``InMemoryEventStore`` is the ``EventStore`` port on the real ``MsgspecMapper``: every saved
event is encoded to its stored state and decoded back on load, exactly as through
PostgreSQL (versions, upcasters, former topics), so a test that passes here cannot lean on
an event that would not survive the log. Saves are atomic, versions are optimistic
(a taken version raises the app's ``ConcurrencyConflict``), and each event gets the next
log position.

The read-model fakes (``FakeRegistryQueries``, ``FakeMessagingQueries``,
``FakeWebhookQueries``) answer from the aggregates rebuilt from that log, so they are never
behind: ``FakeWaiter`` says so. Failures the real store can show are switchable: ``fail``
(a lost connection before the commit), ``fail_next``/``committed`` (before or after the
commit), ``gate`` (a slow store).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, StoredEvent

from warest.app.ports import ConcurrencyConflict
from warest.app.records import PendingOutbound, SessionRecord, UserRecord
from warest.app.webhooks import EndpointView
from warest.domain.messages import Message
from warest.domain.model import Aggregate, DomainEvent
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.webhooks import WebhookEndpoint
from warest.infra.db.queries import AUTOSTART_STATUSES
from warest.infra.eventstore.mapper import MsgspecMapper

A = TypeVar("A", bound=Aggregate)


class InMemoryEventStore:
    """The ``EventStore`` port in memory, through the real mapper.

    ``fail(aggregates)`` (called before their pending events are collected): when it returns
    true the save raises ``ConnectionError`` and
    stores nothing. ``fail_next``: that many saves raise ``ConnectionError``, before storing,
    or after it when ``committed`` (only the answer was lost). ``gate``: saves wait for it.
    """

    def __init__(self) -> None:
        self.mapper = MsgspecMapper(JSONTranscoder())
        self.log: list[StoredEvent] = []  # position n is log[n - 1]
        self.streams: dict[UUID, list[StoredEvent]] = {}
        self.fail: Callable[[Sequence[Any]], object] | None = None
        self.fail_next = 0
        self.committed = False
        self.gate: asyncio.Event | None = None
        self.calls = 0
        self.conflicts = 0

    # -- the port ------------------------------------------------------------------------

    async def save(self, *aggregates: Any) -> int:
        """Records the pending events of ``aggregates`` atomically; the highest new
        position (0: nothing to record). Events are collected first, as the real store does."""
        self.calls += 1
        lost = self.fail is not None and self.fail(aggregates)  # it may look at the pending events
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if self.gate is not None:
            await self.gate.wait()
        if lost:
            raise ConnectionError("the database connection was lost")
        if self.fail_next and not self.committed:
            self.fail_next -= 1
            raise ConnectionError("the database went away")
        position = self.record(events)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("connection lost before the answer")
        return position

    async def get(self, aggregate_id: UUID) -> Any:  # an aggregate or None
        return self.load(aggregate_id)

    # -- synchronous helpers for tests and the fake read models ----------------------------

    def record(self, events: Sequence[DomainEvent]) -> int:
        """Appends ``events`` atomically (a taken version stores none of them)."""
        taken: set[tuple[UUID, int]] = set()
        for event in events:
            key = (event.originator_id, event.originator_version)
            stream = self.streams.get(event.originator_id, [])
            if key in taken or any(s.originator_version == event.originator_version for s in stream):
                self.conflicts += 1
                raise ConcurrencyConflict(
                    f"version {event.originator_version} of {event.originator_id} is taken"
                )
            taken.add(key)
        for event in events:
            stored = self.mapper.to_stored_event(event)
            self.log.append(stored)
            self.streams.setdefault(stored.originator_id, []).append(stored)  # type: ignore[arg-type]
        return len(self.log) if events else 0

    def append_stored(self, originator_id: UUID, version: int, topic: str, state: bytes) -> int:
        """Appends a stored event as older code wrote it (a topic and a JSON state), to see
        what loading it gives today."""
        stored = StoredEvent(
            originator_id=originator_id, originator_version=version, topic=topic, state=state
        )
        self.log.append(stored)
        self.streams.setdefault(originator_id, []).append(stored)
        return len(self.log)

    def put(self, *aggregates: Any) -> int:
        """``save`` without its failure switches, for arranging a test."""
        return self.record([event for aggregate in aggregates for event in aggregate.collect_events()])

    def load(self, aggregate_id: UUID) -> Any:  # an aggregate or None
        aggregate = None
        for event in self.events(aggregate_id):
            aggregate = event.mutate(aggregate)
        return aggregate

    def events(self, aggregate_id: UUID) -> list[Any]:
        """The stream's events, decoded from their stored states."""
        return [self.mapper.to_domain_event(s) for s in self.streams.get(aggregate_id, [])]

    def kinds(self, aggregate_id: UUID) -> list[str]:
        return [type(event).__name__ for event in self.events(aggregate_id)]

    def all_events(self) -> list[Any]:
        return [self.mapper.to_domain_event(s) for s in self.log]

    def names(self, kind: type[Any] | tuple[type[Any], ...]) -> list[str]:
        """The names of the logged events of ``kind``, in log order."""
        return [type(e).__name__ for e in self.all_events() if isinstance(e, kind)]

    def aggregates(self, cls: type[A]) -> list[A]:
        """Every aggregate of ``cls`` in the log, rebuilt, in the order they were created."""
        found = [self.load(aggregate_id) for aggregate_id in self.streams]
        return [a for a in found if isinstance(a, cls)]

    @property
    def max_position(self) -> int:
        return len(self.log)


class FakeWaiter:
    """``ReadModelWaiter``: the fake read models read the log itself, so they are never behind
    (``behind`` makes them say they are)."""

    def __init__(self, store: InMemoryEventStore | None = None) -> None:
        self.store = store
        self.behind = False
        self.waited: list[int] = []

    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        self.waited.append(position)
        return not self.behind and (self.store is None or position <= self.store.max_position)

    async def wait_latest(self, timeout: float = 5.0) -> bool:
        return not self.behind


def user_record(user: User, events: Sequence[Any] = ()) -> UserRecord:
    """The ``rm_users`` row of ``user`` (``events``: its stream, for when its key last changed)."""
    rotated = [e.timestamp for e in events if isinstance(e, User.ApiKeyRotated | User.Registered)]
    return UserRecord(
        id=user.id,
        username=user.username,
        registry=user.registry,
        role=user.role.value,
        disabled=user.disabled,
        password_hash=user.password_hash,
        api_key_digest=user.api_key_digest,
        key_rotated_at=rotated[-1] if rotated and user.api_key_digest else None,
        created_at=user.created_on,
        updated_at=user.modified_on,
    )


def session_record(session: Session) -> SessionRecord:
    return SessionRecord(
        id=session.id,
        registry=session.registry,
        session_id=session.name,
        label=session.label,
        auto_start=session.auto_start,
        engine=session.engine,
        webhook_url=None,
        status=session.status.value,
        created_at=session.created_on,
        updated_at=session.modified_on,
        me_jid=session.me_jid,
        me_lid=session.me_lid,
        push_name=session.push_name,
    )


class FakeRegistryQueries:
    """``RegistryQueries`` answered from the users and sessions in the store's log (usernames
    compare case-insensitively; deleted sessions are gone), as the registry projection does."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store

    async def user_by_id(self, user_id: UUID) -> UserRecord | None:
        user = self.store.load(user_id)
        return user_record(user, self.store.events(user_id)) if isinstance(user, User) else None

    async def user_by_username(self, username: str) -> UserRecord | None:
        return next((r for r in await self.users() if r.username.lower() == username.lower()), None)

    async def user_by_key_digest(self, digest: str) -> UserRecord | None:
        return next((r for r in await self.users() if r.api_key_digest == digest), None)

    async def users(self) -> list[UserRecord]:
        return [user_record(u, self.store.events(u.id)) for u in self.store.aggregates(User)]

    async def session(self, registry: str, session_id: str) -> SessionRecord | None:
        return next((r for r in await self.sessions(registry) if r.session_id == session_id), None)

    async def sessions(self, registry: str) -> list[SessionRecord]:
        live = [s for s in self.store.aggregates(Session) if not s.deleted and s.registry == registry]
        return sorted((session_record(s) for s in live), key=lambda r: r.session_id)


class FakeMessagingQueries:
    """``MessagingQueries`` answered from the log: auto-start sessions, the queued outbound
    messages of a session, and the message a WhatsApp id names."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store

    async def autostart_sessions(self) -> list[SessionRecord]:
        sessions = self.store.aggregates(Session)
        chosen = [
            s for s in sessions if not s.deleted and s.auto_start and s.status.value in AUTOSTART_STATUSES
        ]
        return sorted((session_record(s) for s in chosen), key=lambda r: (r.registry, r.session_id))

    async def pending_outbound(self, registry: str, session_id: str) -> list[PendingOutbound]:
        pending = []
        for position, aggregate_id in enumerate(self.store.streams, start=1):
            message = self.store.load(aggregate_id)
            if not isinstance(message, Message) or not message.pending:
                continue
            if (message.registry, message.session) != (registry, session_id):
                continue
            queued = self.store.events(aggregate_id)[0]
            pending.append(
                PendingOutbound(
                    message_id=message.id,
                    registry=message.registry,
                    session_id=message.session,
                    local_id=message.wa_id,
                    chat=message.chat,
                    text=message.text,
                    mentions=list(getattr(queued, "mentions", [])),
                    reply_to=getattr(queued, "reply_to", None),
                    position=position,
                )
            )
        return pending

    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None:
        for message in self.store.aggregates(Message):
            if (message.registry, message.session, message.wa_id) == (registry, session_id, wa_id):
                return message.id
        return None


class FakeWebhookQueries:
    """``WebhookQueries`` for the endpoints of a session, answered from the log (deliveries,
    replays and health are the outbox's: not faked here)."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.resets: list[UUID] = []

    async def endpoints(self, session_id: UUID) -> list[EndpointView]:
        found = [
            e for e in self.store.aggregates(WebhookEndpoint) if e.session_id == session_id and not e.removed
        ]
        return [
            EndpointView(
                id=e.id,
                name=e.name,
                url=e.url,
                events=list(e.events) or None,
                description=e.description,
                enabled=e.enabled,
                disabled_reason=e.disabled_reason,
                disabled_by=e.disabled_by,
                created_at=e.created_on,
                updated_at=e.modified_on,
                rotating=e.previous_until is not None,
                previous_until=e.previous_until,
            )
            for e in sorted(found, key=lambda e: e.name)
        ]

    async def reset_health(self, endpoint_id: UUID) -> None:
        self.resets.append(endpoint_id)


class FakeClock:
    """``Clock``: a fixed time that tests move, and a ``sleep`` that records the delay,
    advances the clock and yields once (``endless_from``: sleeps this long or longer never
    end by themselves)."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        self.sleeps: list[float] = []
        self.endless_from: float | None = None

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.endless_from is not None and seconds >= self.endless_from:
            await asyncio.Event().wait()
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def waits(self) -> list[float]:
        """The sleeps that waited (not the zero-second yields)."""
        return [s for s in self.sleeps if s > 0]


class FakeLoginGuard:
    """``LoginGuardStore`` in memory (a count restarts after a day without failures)."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], tuple[int, datetime]] = {}
        self.locks: dict[tuple[str, str], datetime] = {}

    async def locked_until(self, username: str, address: str) -> datetime | None:
        return self.locks.get((username, address))

    async def record_failure(self, username: str, address: str, now: datetime) -> int:
        count, last = self.failures.get((username, address), (0, now))
        count = 1 if now - last > timedelta(days=1) else count + 1
        self.failures[(username, address)] = (count, now)
        return count

    async def lock(self, username: str, address: str, until: datetime) -> None:
        self.locks[(username, address)] = until

    async def clear(self, username: str, address: str) -> None:
        self.failures.pop((username, address), None)
        self.locks.pop((username, address), None)


class FakeAuthSessions:
    """``AuthSessionStore`` in memory."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[UUID, datetime]] = {}

    async def create(self, token_digest: str, user_id: UUID, expires_at: datetime) -> None:
        self.sessions[token_digest] = (user_id, expires_at)

    async def user_id(self, token_digest: str, now: datetime) -> UUID | None:
        found = self.sessions.get(token_digest)
        return found[0] if found is not None and found[1] > now else None

    async def revoke(self, token_digest: str, now: datetime) -> None:
        self.sessions.pop(token_digest, None)


class FakeHasher:
    """``PasswordHasher`` without the cost of argon2 (the service's rules are under test)."""

    def hash(self, password: str) -> str:
        return "plain$" + password

    def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == "plain$" + password
