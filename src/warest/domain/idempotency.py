"""Idempotency records: what one ``Idempotency-Key`` produced, so a retry gets it again.

Saved atomically with the messages of the first request; a second request with the same
key collides on the record's version 1 and reads it back instead of sending again.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from warest.domain import ids, model


class IdempotencyRecord(model.Aggregate):
    key: str
    fingerprint: str
    message_ids: list[UUID]

    class Recorded(model.Created, frozen=True, kw_only=True):
        registry: str
        session: str
        key: str
        fingerprint: str
        message_ids: list[UUID]

        def apply(self, aggregate: Any) -> None:
            aggregate.key = self.key
            aggregate.fingerprint = self.fingerprint
            aggregate.message_ids = list(self.message_ids)

    @classmethod
    def record(
        cls, registry: str, session: str, key: str, fingerprint: str, message_ids: list[UUID]
    ) -> IdempotencyRecord:
        return cls._create(
            cls.Recorded,
            ids.idempotency_id(registry, session, key),
            registry=registry,
            session=session,
            key=key,
            fingerprint=fingerprint,
            message_ids=message_ids,
        )


IdempotencyRecord.Recorded.aggregate_class = IdempotencyRecord
