"""The Session aggregate: one WhatsApp account linked to the gateway, owned by a registry.

Lifecycle happenings (QR, pairing, connection states) arrive with the engines; this
module holds what the owner configures: label, auto-start and webhook settings.
"""

from __future__ import annotations

from typing import Any

from warest.domain import ids, model
from warest.domain.errors import AlreadyExists, NotFound


class Session(model.Aggregate):
    registry: str
    name: str
    label: str
    auto_start: bool
    engine: str
    webhook_url: str | None
    deleted: bool

    class Created(model.Created, frozen=True, kw_only=True):
        registry: str
        name: str
        label: str
        auto_start: bool = True
        engine: str = "sandbox"

        def apply(self, aggregate: Any) -> None:
            aggregate.registry = self.registry
            aggregate.name = self.name
            aggregate.label = self.label
            aggregate.auto_start = self.auto_start
            aggregate.engine = self.engine
            aggregate.webhook_url = None
            aggregate.deleted = False

    class Configured(model.DomainEvent, frozen=True, kw_only=True):
        """Owner-set options changed. ``None`` means "unchanged"; "" clears the URL."""

        label: str | None = None
        auto_start: bool | None = None
        webhook_url: str | None = None

        def apply(self, aggregate: Any) -> None:
            if self.label is not None:
                aggregate.label = self.label
            if self.auto_start is not None:
                aggregate.auto_start = self.auto_start
            if self.webhook_url is not None:
                aggregate.webhook_url = self.webhook_url or None

    class Deleted(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    @classmethod
    def create(cls, registry: str, name: str, label: str | None, auto_start: bool, engine: str) -> Session:
        return cls._create(
            cls.Created,
            ids.session_id(registry, name),
            registry=registry,
            name=name,
            label=label or name,
            auto_start=auto_start,
            engine=engine,
        )

    def recreate(self, label: str | None, auto_start: bool, engine: str) -> None:
        if not self.deleted:
            raise AlreadyExists(f"session '{self.name}' exists")
        self._trigger(
            Session.Created,
            registry=self.registry,
            name=self.name,
            label=label or self.name,
            auto_start=auto_start,
            engine=engine,
        )

    def configure(
        self,
        label: str | None = None,
        auto_start: bool | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self._ensure_live()
        changed = {
            "label": label if label is not None and label != self.label else None,
            "auto_start": auto_start if auto_start is not None and auto_start != self.auto_start else None,
            "webhook_url": webhook_url
            if webhook_url is not None and (webhook_url or None) != self.webhook_url
            else None,
        }
        if any(v is not None for v in changed.values()):
            self._trigger(Session.Configured, **changed)

    def delete(self) -> None:
        self._ensure_live()
        self._trigger(Session.Deleted)

    def _ensure_live(self) -> None:
        if self.deleted:
            raise NotFound(f"session '{self.name}' not found")


Session.Created.aggregate_class = Session
