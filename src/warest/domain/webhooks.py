"""The WebhookEndpoint aggregate: one receiver URL of a session, with its secret and filter.

A session may have any number of endpoints; the original's single URL and secret map onto
the endpoint named ``primary``. Secrets never appear in clear in the log: events carry
them *sealed* (encrypted with a server key by the application layer) and the event
history redacts the sealed value as well.

An endpoint is disabled by its owner or by delivery (HTTP 404/410): it is kept, visible,
and can be enabled again. A rotated secret stays valid until ``previous_until``; during
that grace period deliveries are signed with both.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from warest.domain import ids, model
from warest.domain.errors import AlreadyExists, InvalidValue, NotFound
from warest.domain.text import checked

# The webhook event names (the original's tags), in the order of its catalog.
EVENT_NAMES: tuple[str, ...] = (
    "session_status",
    "message_received",
    "message_reaction",
    "message_command",
    "message_edited",
    "message_revoked",
    "group_participants",
    "group_join",
    "group_leave",
    "group_update",
    "presence_update",
    "creds_update",
    "call",
)
PRIMARY = "primary"
NAME_RE = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
URL_MAX = 2048
DESCRIPTION_MAX = 200


def endpoint_id(registry: str, session: str, name: str, incarnation: int = 1) -> UUID:
    return ids.webhook_endpoint_id(registry, session, name, incarnation)


def endpoint_name(value: str, field: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidValue(field, "must be 1-64 characters of letters, digits, '.', '_' or '-'")
    return value


def url(value: str, field: str = "url") -> str:
    """A syntactically valid http(s) URL without credentials (where it resolves to is
    checked by the egress guard before it is saved and before every request)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(field, "must be an http:// or https:// URL")
    value = value.strip()
    if len(value) > URL_MAX:
        raise InvalidValue(field, f"must have at most {URL_MAX} characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidValue(field, "is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidValue(field, "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidValue(field, "must not carry credentials")
    if port == 0:
        raise InvalidValue(field, "has an invalid port")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidValue(field, "must not contain spaces or control characters")
    return value


def event_filter(value: list[str] | None, field: str = "events") -> list[str]:
    """Event names to deliver; empty means every event."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidValue(field, "must be a list of event names")
    unknown = [v for v in value if v not in EVENT_NAMES]
    if unknown:
        raise InvalidValue(field, f"unknown event '{unknown[0]}' (known: {', '.join(EVENT_NAMES)})")
    return sorted(set(value), key=EVENT_NAMES.index)


def description(value: str | None, field: str = "description") -> str | None:
    if value is None:
        return None
    return checked(value, field, max_length=DESCRIPTION_MAX).strip() or None


class WebhookEndpoint(model.Aggregate):
    registry: str
    session: str
    session_id: UUID
    name: str
    url: str
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_until: datetime | None
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_by: str | None
    removed: bool

    class Added(model.Created, frozen=True, kw_only=True):
        registry: str
        session: str
        session_id: UUID
        name: str
        url: str
        secret_sealed: str
        events: list[str] = []
        description: str | None = None

        def apply(self, aggregate: Any) -> None:
            for key in ("registry", "session", "session_id", "name", "url", "secret_sealed", "description"):
                setattr(aggregate, key, getattr(self, key))
            aggregate.events = list(self.events)
            aggregate.previous_secret_sealed = None
            aggregate.previous_until = None
            aggregate.enabled = True
            aggregate.disabled_reason = None
            aggregate.disabled_by = None
            aggregate.removed = False

    class Changed(model.DomainEvent, frozen=True, kw_only=True):
        """``None`` means unchanged."""

        url: str | None = None
        events: list[str] | None = None
        description: str | None = None

        def apply(self, aggregate: Any) -> None:
            if self.url is not None:
                aggregate.url = self.url
            if self.events is not None:
                aggregate.events = list(self.events)
            if self.description is not None:
                aggregate.description = self.description or None

    class SecretRotated(model.DomainEvent, frozen=True, kw_only=True):
        """A new secret; the old one stays valid until ``previous_until`` (None: not at all)."""

        secret_sealed: str
        previous_until: datetime | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.previous_secret_sealed = aggregate.secret_sealed if self.previous_until else None
            aggregate.previous_until = self.previous_until
            aggregate.secret_sealed = self.secret_sealed

    class Disabled(model.DomainEvent, frozen=True, kw_only=True):
        """``by`` is ``owner`` (through the API) or ``delivery`` (the receiver answered 404/410)."""

        reason: str
        by: str = "owner"

        def apply(self, aggregate: Any) -> None:
            aggregate.enabled = False
            aggregate.disabled_reason = self.reason
            aggregate.disabled_by = self.by

    class Enabled(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.enabled = True
            aggregate.disabled_reason = None
            aggregate.disabled_by = None

    class Removed(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.removed = True

    # -- commands -------------------------------------------------------------------

    @classmethod
    def add(
        cls,
        registry: str,
        session: str,
        name: str,
        url_: str,
        secret_sealed: str,
        events: list[str] | None = None,
        description_: str | None = None,
        incarnation: int = 1,
    ) -> WebhookEndpoint:
        name = endpoint_name(name)
        return cls._create(
            cls.Added,
            endpoint_id(registry, session, name, incarnation),
            registry=registry,
            session=session,
            session_id=ids.session_id(registry, session),
            name=name,
            url=url(url_),
            secret_sealed=secret_sealed,
            events=event_filter(events),
            description=description(description_),
        )

    def re_add(
        self, url_: str, secret_sealed: str, events: list[str] | None, description_: str | None
    ) -> None:
        """A removed endpoint's name is used again: the stream goes on with a fresh state."""
        if not self.removed:
            raise AlreadyExists(f"webhook '{self.name}' exists")
        self._trigger(
            WebhookEndpoint.Added,
            registry=self.registry,
            session=self.session,
            session_id=self.session_id,
            name=self.name,
            url=url(url_),
            secret_sealed=secret_sealed,
            events=event_filter(events),
            description=description(description_),
        )

    def change(
        self, url_: str | None = None, events: list[str] | None = None, description_: str | None = None
    ) -> None:
        self._ensure_live()
        new_url = url(url_) if url_ is not None else None
        new_events = event_filter(events) if events is not None else None
        new_description = description(description_) if description_ is not None else None
        changed = {
            "url": new_url if new_url is not None and new_url != self.url else None,
            "events": new_events if new_events is not None and new_events != self.events else None,
            "description": (
                (new_description or "")
                if description_ is not None and new_description != self.description
                else None
            ),
        }
        if any(v is not None for v in changed.values()):
            self._trigger(WebhookEndpoint.Changed, **changed)

    def rotate_secret(self, secret_sealed: str, previous_until: datetime | None) -> None:
        self._ensure_live()
        self._trigger(
            WebhookEndpoint.SecretRotated, secret_sealed=secret_sealed, previous_until=previous_until
        )

    def disable(self, reason: str, by: str = "owner") -> None:
        self._ensure_live()
        if self.enabled:
            self._trigger(WebhookEndpoint.Disabled, reason=reason[:300], by=by)

    def enable(self) -> None:
        self._ensure_live()
        if not self.enabled:
            self._trigger(WebhookEndpoint.Enabled)

    def remove(self) -> None:
        self._ensure_live()
        self._trigger(WebhookEndpoint.Removed)

    def secrets_sealed(self, now: datetime) -> list[str]:
        """The secrets to sign with at ``now``: the current one, and the previous one during
        its grace period."""
        out = [self.secret_sealed]
        if self.previous_secret_sealed and self.previous_until and now < self.previous_until:
            out.append(self.previous_secret_sealed)
        return out

    def _ensure_live(self) -> None:
        if self.removed:
            raise NotFound(f"webhook '{self.name}' not found")


WebhookEndpoint.Added.aggregate_class = WebhookEndpoint
