"""A typed msgspec mapper for the eventsourcing library.

The library's default mapper serialises ``vars(event)`` through a JSON transcoder; our
events are msgspec Structs, so we encode them directly and decode them with their class
as the target type, which keeps UUIDs, datetimes and enums typed. Older event shapes are
upcast with the event class's ``upcast_v{n}_v{n+1}`` static methods.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

_encoder = msgspec.json.Encoder()
_VERSION_KEY = "_v"


class MsgspecMapper(Mapper[Any]):
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls = type(domain_event)
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state_dict = msgspec.to_builtins(domain_event)
            state_dict[_VERSION_KEY] = class_version
            state = _encoder.encode(state_dict)
        else:
            state = _encoder.encode(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(cls),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        state = stored_event.state
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            class_version = getattr(cls, "class_version", 1)
            if class_version == 1:
                return msgspec.json.decode(state, type=cls)
            raw: dict[str, Any] = msgspec.json.decode(state)
            version = raw.pop(_VERSION_KEY, 1)
            while version < class_version:
                getattr(cls, f"upcast_v{version}_v{version + 1}")(raw)
                version += 1
            return msgspec.convert(raw, type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError, AttributeError) as e:
            msg = (
                f"cannot decode event {stored_event.topic} "
                f"{stored_event.originator_id} v{stored_event.originator_version}: {e}"
            )
            raise MapperDeserialisationError(msg) from e
