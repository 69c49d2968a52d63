"""A typed msgspec mapper for the eventsourcing library, and the one way events are decoded.

The library's default mapper serialises ``vars(event)`` through a JSON transcoder; our
events are msgspec Structs, so we encode them directly and decode them with their class
as the target type, which keeps UUIDs, datetimes and enums typed.

Versions: an event of a class at ``class_version`` n > 1 is stored with ``"_v": n`` as the
JSON object's last key (version 1 stores nothing). Older shapes are upcast with the class's static
``upcast_v{n}_v{n+1}`` methods (one may hand the state on to another class: a split).
A stored version *newer* than the class here was written by newer code: decoding refuses
it with ``EventFromTheFuture`` instead of silently dropping what it does not know.
Former topics (``renamed_from``) resolve to the renamed class.

Everything that reads stored events (projection runners, the webhook outbox, the
history) decodes through ``decode_state`` here, so upcasters always apply.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import TopicError, get_topic, register_topic, resolve_topic

from warest.domain.catalog import EVENT_CLASSES
from warest.domain.model import DomainEvent

_encoder = msgspec.json.Encoder()
VERSION_KEY = "_v"
_VERSION_MARK = b'"_v"'


class _Version(msgspec.Struct, rename={"v": VERSION_KEY}):
    """Reads only the top-level ``_v`` of a stored state (1 when absent)."""

    v: int = 1


_version_decoder = msgspec.json.Decoder(_Version)


class EventFromTheFuture(MapperDeserialisationError):
    """A stored event's version is newer than its class in this code: it was written by a
    newer release. Nothing may act on it here (its new fields would be dropped silently); a
    projection parks it, and upgrading the code lets it through."""

    def __init__(self, topic: str, stored: int, known: int, where: str = "") -> None:
        self.topic = topic
        self.stored_version = stored
        self.known_version = known
        super().__init__(
            f"event {topic}{where} is stored at version {stored}, but this code knows "
            f"version {known} at most: it was written by a newer release; upgrade warest"
        )


def _register_former_topics() -> None:
    for cls in EVENT_CLASSES:
        for former in cls.renamed_from:
            register_topic(former, cls)


_register_former_topics()


def class_version(cls: type) -> int:
    return int(getattr(cls, "class_version", 1))


def encode_event(event: Any) -> bytes:
    """The stored state of ``event``: its fields, and ``"_v"`` when its version is above 1."""
    state = _encoder.encode(event)
    version = class_version(type(event))
    if version > 1:
        # A Struct encodes as a non-empty JSON object: append the key before its brace.
        state = state[:-1] + b',"_v":%d}' % version
    return state


def stored_version(state: bytes) -> int:
    """The version a stored state was written at (only a top-level ``_v`` counts).

    ``_v`` is written as the object's last key, so only the tail is searched (searching a
    whole state for it cost as much as decoding it); a ``_v`` found there inside a field's
    value is not taken for the version: the top level is then decoded for it.
    """
    return _version_decoder.decode(state).v if _VERSION_MARK in state[-24:] else 1


class _Target(NamedTuple):
    cls: Any
    version: int
    decoder: msgspec.json.Decoder[Any]


_targets: dict[str, _Target] = {}


def _target(topic: str, where: str) -> _Target:
    """The class of ``topic`` (former topics included), its version and its decoder."""
    try:
        cls = resolve_topic(topic)
    except TopicError as e:
        raise MapperDeserialisationError(f"cannot decode event {topic}{where}: unknown topic") from e
    target = _targets[topic] = _Target(cls, class_version(cls), msgspec.json.Decoder(cls))
    return target


def decode_state(topic: str, state: bytes, where: str = "") -> DomainEvent:
    """The domain event of a stored (plain) state, upcast to the current shape.

    Raises ``EventFromTheFuture`` for a version newer than the code, and
    ``MapperDeserialisationError`` for anything else that does not decode; ``where``
    (e.g. " <id> v3") completes their message.
    """
    cls, known, decoder = _targets.get(topic) or _target(topic, where)
    try:
        version = stored_version(state)
        if version == known:
            event: DomainEvent = decoder.decode(state)
            return event
        if version > known:
            raise EventFromTheFuture(topic, version, known, where)
        raw: dict[str, Any] = msgspec.json.decode(state)
        raw.pop(VERSION_KEY, None)
        while version < known:
            successor = getattr(cls, f"upcast_v{version}_v{version + 1}")(raw)
            if successor is not None:
                cls, version, known = successor, 1, class_version(successor)
            else:
                version += 1
        converted: DomainEvent = msgspec.convert(raw, type=cls)
        return converted
    except (msgspec.DecodeError, msgspec.ValidationError, AttributeError, KeyError, TypeError) as e:
        raise MapperDeserialisationError(f"cannot decode event {topic}{where}: {e}") from e


class MsgspecMapper(Mapper[Any]):
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = encode_event(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.decode(stored_event.topic, stored_event.state, stored_event.originator_id,
                           stored_event.originator_version)  # fmt: skip

    def decode(self, topic: str, state: bytes, originator_id: UUID | str = "", version: int = 0) -> Any:
        """A stored event's domain event from its columns (for readers that select them)."""
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return decode_state(topic, state, f" {originator_id} v{version}" if originator_id else "")
