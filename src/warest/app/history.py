"""The event history: a tenant's own events, in log order, for auditors and analytics.

Every event of the caller's streams (users, sessions, messages) is listed with its global
position, stream id, stream version, a stable public type name and its fields. Secrets
(password hashes, API-key digests) never leave this module. Login secrets are not in the
log: neither QR strings (``Session.QrIssued`` v2) nor pairing codes
(``Session.PairingCodeIssued`` v2); decoding drops them from older events.

Events are visible once the ``streams`` read model knows their stream; every read is
bounded by that read model's position (the *horizon*), so a cursor never moves past an
event that is not visible yet: paging and following lose nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from warest.app.ports import ReadModelWaiter
from warest.app.records import Principal
from warest.domain import values
from warest.domain.catalog import event_classes
from warest.domain.chats import Chat
from warest.domain.errors import InvalidValue
from warest.domain.messages import Message
from warest.domain.model import DomainEvent, stored_topics
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.webhooks import WebhookEndpoint

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
FOLLOW_PAGE = 500
EXPORT_PAGE = 1000
MIN_IDLE_S = 0.02

# Aggregates whose events the history shows (claims and idempotency records are internal).
AGGREGATES: tuple[type, ...] = (User, Session, Message, Chat, WebhookEndpoint)
SECRET_FIELDS = frozenset({"password_hash", "api_key_digest", "secret_sealed"})
_COMMON_FIELDS = frozenset({"originator_id", "originator_version", "timestamp"})


# Public type name (the class's qualified name, e.g. "Session.Opened") -> event class.
EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__qualname__: cls for aggregate in AGGREGATES for cls in event_classes(aggregate)
}


def _former_types() -> dict[str, tuple[type[DomainEvent], ...]]:
    """Former public names (a renamed class's old name) -> the classes its events decode as
    now (the renamed class, and those split out of it)."""
    former: dict[str, dict[type[DomainEvent], None]] = {}
    for cls in EVENT_TYPES.values():
        for old in cls.renamed_from:
            name = old.partition(":")[2]
            former.setdefault(name, {})[cls] = None
            for other in EVENT_TYPES.values():
                if old in other.split_from:
                    former[name][other] = None
    return {name: tuple(classes) for name, classes in former.items()}


# A name the history used to show (e.g. "Chat.PinnedChanged") still selects its events.
FORMER_TYPES = _former_types()


def types_for(names: Iterable[str]) -> tuple[type[DomainEvent], ...]:
    """Event classes of public type names; names may be comma-separated, ``Aggregate.*``
    selects all of an aggregate's types, a former name what its events decode as now.
    Unknown names are refused (field ``type``)."""
    chosen: dict[type[DomainEvent], None] = {}
    for raw in [names] if isinstance(names, str) else names:
        for name in (part.strip() for part in raw.split(",")):
            if not name:
                continue
            if name.endswith(".*"):
                matches = [EVENT_TYPES[n] for n in EVENT_TYPES if n.startswith(name[:-1])]
            elif name in EVENT_TYPES:
                matches = [EVENT_TYPES[name]]
            else:
                matches = list(FORMER_TYPES.get(name, ()))
            if not matches:
                raise InvalidValue("type", f"unknown event type '{name}'")
            chosen.update(dict.fromkeys(matches))
    return tuple(chosen)


def topics_for(names: Iterable[str]) -> tuple[str, ...]:
    """Every topic under which events of the named types may be stored (former names and
    split events included: see ``HistoryQuery.types``)."""
    return stored_topics(*types_for(names))


# -- records and the query port ---------------------------------------------------------


class HistoryQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which events: one registry (None: every registry), optionally one session, some
    topics (empty: all), and a time window on the event's timestamp: ``since`` inclusive,
    ``until`` exclusive.

    ``types`` (empty: all) are the event classes asked for. ``topics`` are where they may be
    stored, which can also hold events of other classes (a toggle split in two events keeps
    both kinds under its old topic): the service keeps the decoded events of ``types`` only.
    """

    registry: str | None
    session: str | None = None
    topics: tuple[str, ...] = ()
    types: tuple[Any, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def wants(self, event: Any) -> bool:
        return not self.types or type(event) in self.types


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One stored event with its stream's owner, as the query port returns it."""

    position: int
    stream_id: UUID
    version: int
    registry: str
    session: str | None
    event: Any  # the decoded (upcast) domain event


class UnreadableEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A stored event this code cannot decode (e.g. written by a newer release): listed by
    its type name and time with the reason, never as a failure of the whole page."""

    name: str
    timestamp: datetime
    reason: str


class EventBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Events after a position, and the horizon the query was bounded by: every matching
    event at or below ``horizon`` is either in ``events`` or beyond the page limit."""

    events: list[LoggedEvent]
    horizon: int


class HistoryQueries(Protocol):
    async def events(
        self, query: HistoryQuery, after: int, limit: int, upper: int | None = None
    ) -> EventBatch:
        """Matching events with position > ``after``, at most ``limit``, in log order, never
        beyond the ``streams`` read model's position (nor ``upper`` when given)."""
        ...

    async def horizon(self) -> int:
        """The ``streams`` read model's position."""
        ...


class HistoryItem(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One event as the API, the SSE stream and the export show it."""

    position: int
    stream_id: UUID
    version: int
    type: str
    time: datetime
    session: str | None
    data: dict[str, Any]
    registry: str | None = None  # only in admin exports across every registry


def event_data(event: Any) -> dict[str, Any]:
    """The event's own fields, as JSON values, without the common ones and without secrets."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    return {k: v for k, v in fields.items() if k not in _COMMON_FIELDS and k not in SECRET_FIELDS}


def to_item(logged: LoggedEvent, with_registry: bool = False) -> HistoryItem:
    event = logged.event
    if isinstance(event, UnreadableEvent):
        return HistoryItem(
            position=logged.position,
            stream_id=logged.stream_id,
            version=logged.version,
            type=event.name,
            time=event.timestamp,
            session=logged.session,
            data={"unreadable": event.reason},
            registry=logged.registry if with_registry else None,
        )
    return HistoryItem(
        position=logged.position,
        stream_id=logged.stream_id,
        version=logged.version,
        type=type(event).__qualname__,
        time=event.timestamp,
        session=logged.session,
        data=event_data(event),
        registry=logged.registry if with_registry else None,
    )


# -- the service ------------------------------------------------------------------------


def _check_position(after: int) -> int:
    if after < 0:
        raise InvalidValue("after", "must be a position >= 0")
    return after


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValue("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def build_query(
    registry: str | None,
    session: str | None = None,
    types: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> HistoryQuery:
    if since is not None and until is not None and since >= until:
        raise InvalidValue("to", "must be later than 'from'")
    classes = types_for(types)
    return HistoryQuery(
        registry=registry,
        session=values.session_name(session, "session") if session is not None else None,
        topics=stored_topics(*classes),
        types=classes,
        since=since,
        until=until,
    )


class EventHistory:
    def __init__(self, queries: HistoryQueries, waiter: ReadModelWaiter | None = None) -> None:
        self._queries = queries
        self._waiter = waiter

    async def page(
        self,
        owner: Principal,
        after: int = 0,
        limit: int = DEFAULT_LIMIT,
        session: str | None = None,
        types: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[HistoryItem]:
        """The caller's events with position > ``after``, oldest first, at most ``limit``."""
        query = build_query(owner.registry, session, types, since, until)
        cursor, limit = _check_position(after), _check_limit(limit)
        items: list[HistoryItem] = []
        while True:
            batch = await self._queries.events(query, cursor, limit)
            items += [to_item(e) for e in batch.events if query.wants(e.event)]
            if len(items) >= limit or len(batch.events) < limit:
                return items[:limit]
            cursor = batch.events[-1].position

    async def follow(
        self,
        owner: Principal,
        after: int = 0,
        session: str | None = None,
        types: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        heartbeat_s: float = 15.0,
        poll_s: float = 1.0,
    ) -> AsyncIterator[list[HistoryItem]]:
        """The caller's events after ``after``, then new ones as they are committed, forever.

        Yields non-empty batches in log order, and an empty batch when nothing was yielded
        for ``heartbeat_s``. Waits on the read models (woken by commits of any process),
        and re-reads at least every ``poll_s``.
        """
        if self._waiter is None:
            raise RuntimeError("following the history needs a read-model waiter")
        query = build_query(owner.registry, session, types, since, until)
        return self._follow(query, _check_position(after), self._waiter, heartbeat_s, poll_s)

    async def _follow(
        self, query: HistoryQuery, cursor: int, waiter: ReadModelWaiter, heartbeat_s: float, poll_s: float
    ) -> AsyncIterator[list[HistoryItem]]:
        loop = asyncio.get_running_loop()
        last_yield = loop.time()
        while True:
            batch = await self._queries.events(query, cursor, FOLLOW_PAGE)
            if batch.events:
                cursor = batch.events[-1].position
                items = [to_item(e) for e in batch.events if query.wants(e.event)]
                if items:
                    yield items
                    last_yield = loop.time()
                if len(batch.events) >= FOLLOW_PAGE:
                    continue
            # Everything at or below the horizon has been seen.
            cursor = max(cursor, batch.horizon)
            remaining = heartbeat_s - (loop.time() - last_yield)
            if remaining <= 0:
                yield []
                last_yield = loop.time()
                remaining = heartbeat_s
            idle_from = loop.time()
            await waiter.wait(batch.horizon + 1, timeout=min(poll_s, remaining))
            # The waiter may answer at once (e.g. while the read model is rebuilt): never spin.
            spent = loop.time() - idle_from
            if spent < MIN_IDLE_S:
                await asyncio.sleep(MIN_IDLE_S - spent)

    async def horizon(self) -> int:
        """The highest position the history can show today."""
        return await self._queries.horizon()

    async def export(
        self,
        registry: str | None,
        after: int = 0,
        session: str | None = None,
        types: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        upper: int | None = None,
    ) -> AsyncIterator[HistoryItem]:
        """Every matching event after ``after`` up to ``upper`` (default: the horizon now),
        for administrators: ``registry=None`` means every registry, and then each item
        names its registry."""
        query = build_query(
            values.registry(registry) if registry is not None else None, session, types, since, until
        )
        cursor = _check_position(after)
        stop = upper if upper is not None else await self._queries.horizon()
        while True:
            batch = await self._queries.events(query, cursor, EXPORT_PAGE, upper=stop)
            for logged in batch.events:
                if query.wants(logged.event):
                    yield to_item(logged, with_registry=registry is None)
            if len(batch.events) < EXPORT_PAGE:
                return
            cursor = batch.events[-1].position
