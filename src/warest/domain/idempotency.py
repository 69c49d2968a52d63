"""Idempotency records: what one ``Idempotency-Key`` produced, so a retry gets it again.

Saved atomically with the messages of the first request; a second request with the same
key collides on the record's version 1 and reads it back instead of sending again. A
record lasts a time to live (``WAREST_IDEMPOTENCY_TTL_HOURS``): after it, the key is new
again, and the request that reuses it renews the record (``Renewed``) with its messages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from warest.domain import ids, model


class IdempotencyRecord(model.Aggregate):
    key: str
    fingerprint: str
    message_ids: list[UUID]
    recorded_at: datetime

    class Recorded(model.Created, frozen=True, kw_only=True):
        """``at``: when, by the application's clock (None in events recorded before keys
        expired: the event's time)."""

        registry: str
        session: str
        key: str
        fingerprint: str
        message_ids: list[UUID]
        at: datetime | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.key = self.key
            aggregate.fingerprint = self.fingerprint
            aggregate.message_ids = list(self.message_ids)
            aggregate.recorded_at = self.at or self.timestamp

    class Renewed(model.DomainEvent, frozen=True, kw_only=True):
        """The key was used again after the record expired: it now stands for this request."""

        fingerprint: str
        message_ids: list[UUID]
        at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.fingerprint = self.fingerprint
            aggregate.message_ids = list(self.message_ids)
            aggregate.recorded_at = self.at

    @classmethod
    def record(
        cls,
        registry: str,
        session: str,
        key: str,
        fingerprint: str,
        message_ids: list[UUID],
        incarnation: int = 1,
        at: datetime | None = None,
    ) -> IdempotencyRecord:
        return cls._create(
            cls.Recorded,
            ids.idempotency_id(registry, session, key, incarnation),
            registry=registry,
            session=session,
            key=key,
            fingerprint=fingerprint,
            message_ids=message_ids,
            at=at,
        )

    def expired(self, now: datetime, ttl: timedelta) -> bool:
        return now - self.recorded_at >= ttl

    def renew(self, fingerprint: str, message_ids: list[UUID], at: datetime) -> None:
        self._trigger(IdempotencyRecord.Renewed, fingerprint=fingerprint, message_ids=message_ids, at=at)


IdempotencyRecord.Recorded.aggregate_class = IdempotencyRecord
