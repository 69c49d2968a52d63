"""The typed msgspec mapper: types survive a round trip; old shapes are upcast."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic

from warest.domain import model
from warest.domain.users import User
from warest.domain.values import Role
from warest.infra.eventstore.mapper import MsgspecMapper
from warest.infra.eventstore.store import EventStoreApp


class Renamed2(model.DomainEvent, frozen=True, kw_only=True):
    """Version 2 of an event whose v1 had ``name`` instead of ``first``/``last``."""

    first: str
    last: str
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        first, _, last = state.pop("name").partition(" ")
        state["first"], state["last"] = first, last


def mapper() -> MsgspecMapper:
    app = EventStoreApp(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "MAPPER_TOPIC": f"{MsgspecMapper.__module__}:{MsgspecMapper.__qualname__}",
        }
    )
    assert isinstance(app.mapper, MsgspecMapper)
    return app.mapper


def test_round_trip_keeps_types() -> None:
    user = User.register(uuid.uuid4(), "alice", "REG", Role.ADMIN, "hash", "digest")
    (event,) = user.collect_events()
    stored = mapper().to_stored_event(event)
    assert stored.topic == get_topic(User.Registered)
    back = mapper().to_domain_event(stored)
    assert back == event
    assert isinstance(back.timestamp, datetime) and back.timestamp.tzinfo is not None
    assert isinstance(back.originator_id, uuid.UUID)
    assert back.role is Role.ADMIN


def test_old_event_shapes_are_upcast() -> None:
    stored = StoredEvent(
        originator_id=uuid.uuid4(),
        originator_version=2,
        topic=get_topic(Renamed2),
        state=b'{"originator_id":"%s","originator_version":2,"timestamp":"2024-01-02T03:04:05+00:00",'
        b'"name":"Ada Lovelace"}' % str(uuid.uuid4()).encode(),
    )
    event = mapper().to_domain_event(stored)
    assert (event.first, event.last) == ("Ada", "Lovelace")
    assert event.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_current_version_is_written_and_read_back() -> None:
    event = Renamed2(
        originator_id=uuid.uuid4(),
        originator_version=3,
        timestamp=datetime.now(UTC),
        first="Grace",
        last="Hopper",
    )
    stored = mapper().to_stored_event(event)
    assert b'"_v":2' in stored.state
    assert mapper().to_domain_event(stored) == event


def test_corrupt_state_raises_a_clear_error() -> None:
    stored = StoredEvent(
        originator_id=uuid.uuid4(),
        originator_version=1,
        topic=get_topic(User.Registered),
        state=b'{"username": 5}',
    )
    with pytest.raises(MapperDeserialisationError, match=r"User\.Registered"):
        mapper().to_domain_event(stored)
