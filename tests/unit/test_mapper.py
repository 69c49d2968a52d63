"""The typed msgspec mapper: types survive a round trip; old shapes are upcast."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic

from warest.domain import model
from warest.domain.users import User
from warest.domain.values import Role
from warest.infra.eventstore.mapper import EventFromTheFuture, MsgspecMapper
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


def _stored(cls: type, state: bytes, version: int = 1) -> StoredEvent:
    return StoredEvent(uuid.uuid4(), version, get_topic(cls), state)


_BASE = b'"originator_id":"%s","originator_version":1,"timestamp":"2024-01-02T03:04:05+00:00"' % (
    str(uuid.uuid4()).encode()
)


def test_a_version_newer_than_the_code_is_refused() -> None:
    """Older code used to decode a newer event silently, dropping what it did not know."""
    newer = _stored(User.Disabled, b"{" + _BASE + b',"reason":"new field","_v":2}')
    with pytest.raises(EventFromTheFuture, match=r"User\.Disabled.* version 2.*knows version 1") as caught:
        mapper().to_domain_event(newer)
    assert (caught.value.stored_version, caught.value.known_version) == (2, 1)
    assert isinstance(caught.value, MapperDeserialisationError)  # callers that catch decode errors still do
    with pytest.raises(EventFromTheFuture):
        mapper().to_domain_event(_stored(Renamed2, b"{" + _BASE + b',"first":"a","last":"b","_v":3}'))


def test_only_a_top_level_version_counts() -> None:
    """A ``_v`` key inside a field's value is data, not the event's version."""
    state = b"{" + _BASE + b',"username":"x","registry":"R","role":"user","password_hash":null,'
    state += b'"api_key_digest":"{\\"_v\\":9}"}'
    event = mapper().to_domain_event(_stored(User.Registered, state))
    assert event.api_key_digest == '{"_v":9}'


class Toggled(model.DomainEvent, frozen=True, kw_only=True):
    """v1 was ``Toggled(on: bool)``; v2 records ``on`` only and hands ``off`` to ``Untoggled``."""

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
        return None if state.pop("on") else Untoggled


class Untoggled(model.DomainEvent, frozen=True, kw_only=True):
    split_from: ClassVar[tuple[str, ...]] = (get_topic(Toggled),)


def test_an_upcaster_may_hand_an_old_event_to_another_class() -> None:
    on = mapper().to_domain_event(_stored(Toggled, b"{" + _BASE + b',"on":true}'))
    off = mapper().to_domain_event(_stored(Toggled, b"{" + _BASE + b',"on":false}'))
    assert type(on) is Toggled and type(off) is Untoggled
    assert model.stored_topics(Untoggled) == (get_topic(Untoggled), get_topic(Toggled))
    assert mapper().to_domain_event(mapper().to_stored_event(on)) == on


def test_a_former_topic_resolves_to_the_renamed_class() -> None:
    from warest.domain.chats import Chat  # noqa: PLC0415

    state = b"{" + _BASE + b',"pinned":true}'
    old = StoredEvent(originator_id=uuid.uuid4(), originator_version=2,
                      topic="warest.domain.chats:Chat.PinnedChanged", state=state)  # fmt: skip
    assert type(mapper().to_domain_event(old)) is Chat.Pinned
    unpinned = replace(old, state=state.replace(b"true", b"false"))
    assert type(mapper().to_domain_event(unpinned)) is Chat.Unpinned
