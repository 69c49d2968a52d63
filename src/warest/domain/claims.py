"""Claims make natural keys (usernames, registries) unique across aggregates.

A claim's id is the uuid5 of its key; two users claiming one username collide on the
claim's version 1 in the event store, atomically with the user's own events.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from warest.domain import model
from warest.domain.errors import AlreadyExists


class Claim(model.Aggregate):
    kind: str
    key: str
    owner_id: UUID | None

    class Claimed(model.Created, frozen=True, kw_only=True):
        kind: str
        key: str
        owner_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.kind = self.kind
            aggregate.key = self.key
            aggregate.owner_id = self.owner_id

    class Released(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.owner_id = None

    @classmethod
    def claim(cls, claim_id: UUID, kind: str, key: str, owner_id: UUID) -> Claim:
        return cls._create(cls.Claimed, claim_id, kind=kind, key=key, owner_id=owner_id)

    def reclaim(self, owner_id: UUID) -> None:
        if self.owner_id is not None and self.owner_id != owner_id:
            raise AlreadyExists(f"{self.kind} '{self.key}' is taken")
        if self.owner_id is None:
            self._trigger(Claim.Claimed, kind=self.kind, key=self.key, owner_id=owner_id)

    def release(self) -> None:
        if self.owner_id is not None:
            self._trigger(Claim.Released)


Claim.Claimed.aggregate_class = Claim
