"""Base classes for event-sourced aggregates whose events are typed msgspec Structs.

The eventsourcing library only needs its protocols: an event has ``originator_id``,
``originator_version`` and ``mutate(aggregate)``; an aggregate has ``id``, ``version``
and ``collect_events()``. Events are frozen msgspec Structs so that the mapper can
encode and decode them with their declared types (datetimes stay datetimes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

import msgspec


def utcnow() -> datetime:
    return datetime.now(UTC)


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An immutable fact about one aggregate.

    ``class_version`` is bumped when the shape (or the meaning) of an event changes; the
    mapper then runs the static ``upcast_v{n}_v{n+1}(state: dict)`` methods on older stored
    events, in place. An upcaster may return another event class: the state is then that
    class's version-1 shape and its own upcasters follow (a toggle split in two events).
    ``tests/unit/test_event_versions.py`` holds every class to its version: see
    docs/events.md#versions.

    ``renamed_from``: the topics this class was stored under before a rename (the mapper
    resolves them to this class). ``split_from``: topics of another class whose upcaster
    turns some of its events into this class. Both are where events of this class may be
    found in the log (``stored_topics``).
    """

    originator_id: UUID
    originator_version: int
    timestamp: datetime

    class_version: ClassVar[int] = 1
    renamed_from: ClassVar[tuple[str, ...]] = ()
    split_from: ClassVar[tuple[str, ...]] = ()

    def apply(self, aggregate: Any) -> None:
        """Changes the state of ``aggregate``; overridden by events that carry state."""

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            raise ValueError(f"{type(self).__name__} cannot start an aggregate")
        if self.originator_version != aggregate.version + 1:
            raise ValueError(
                f"version mismatch: event {self.originator_version}, aggregate {aggregate.version}"
            )
        self.apply(aggregate)
        aggregate.version = self.originator_version
        aggregate.modified_on = self.timestamp
        return aggregate


def split_off_when_unset(
    state: dict[str, Any], field: str, other: type[DomainEvent]
) -> type[DomainEvent] | None:
    """An upcaster's rule for a toggle that was one event with a nullable field: an old event
    with ``field`` unset is now ``other`` (without the field); one with it set stays."""
    if state.get(field) is not None:
        return None
    state.pop(field, None)
    return other


def topic(cls: type) -> str:
    """The topic the event store records for ``cls`` (``module:Qualified.Name``)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def stored_topics(*classes: type[DomainEvent]) -> tuple[str, ...]:
    """Every topic under which events of ``classes`` may be stored: their own, their former
    names and the events they were split from (each once, in order)."""
    found: dict[str, None] = {}
    for cls in classes:
        found.update(dict.fromkeys((topic(cls), *cls.renamed_from, *cls.split_from)))
    return tuple(found)


TAggregate = TypeVar("TAggregate", bound="Aggregate")


class Created(DomainEvent, frozen=True, kw_only=True):
    """The first event of an aggregate: it constructs the aggregate object."""

    aggregate_class: ClassVar[type[Aggregate]]

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            aggregate = self.aggregate_class.__new__(self.aggregate_class)
            aggregate._init_from(self)
        else:
            # A re-creation (e.g. after a deletion) keeps the stream and resets the state.
            if self.originator_version != aggregate.version + 1:
                raise ValueError("version mismatch on re-creation")
            aggregate._init_from(self)
        return aggregate


class Aggregate:
    """An event-sourced aggregate. Subclasses define ``Created`` and other events."""

    id: UUID
    version: int
    created_on: datetime
    modified_on: datetime

    def _init_from(self, event: Created) -> None:
        self.id = event.originator_id
        self.version = event.originator_version
        self.created_on = event.timestamp
        self.modified_on = event.timestamp
        if not hasattr(self, "_pending"):
            self._pending: list[DomainEvent] = []
        event.apply(self)

    @classmethod
    def _create(cls, event_class: type[Created], aggregate_id: UUID, **fields: Any) -> Self:
        event = event_class(originator_id=aggregate_id, originator_version=1, timestamp=utcnow(), **fields)
        aggregate: Self = event.mutate(None)
        aggregate._pending.append(event)
        return aggregate

    def _trigger(self, event_class: type[DomainEvent], **fields: Any) -> None:
        event = event_class(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=utcnow(),
            **fields,
        )
        event.mutate(self)
        self._pending.append(event)

    def collect_events(self) -> list[DomainEvent]:
        pending, self._pending = self._pending, []
        return pending

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        return tuple(self._pending)
