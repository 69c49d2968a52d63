"""The Session aggregate: one WhatsApp account linked to the gateway, owned by a registry.

It holds what the owner configures (label, auto-start, engine) and every
lifecycle happening reported by the engine (QR, pairing code, connecting, open,
reconnecting, suspended, logged out, replaced, closed, banned).

Lifecycle events are state transitions, not reports: an outage is one ``ConnectionLost``
(however many attempts the engine makes), then ``Suspended`` if it lasts, then ``Opened``
once the link is back. Attempt counts and retry times are live status (the runtime), not
events.

Event names are past tense (what happened); the session's ``Status`` is what it is now.
Three events were renamed so (their old topics still decode, ``renamed_from``):
``Connecting`` -> ``ConnectionStarted``, ``Reconnecting`` -> ``ConnectionLost``,
``Unavailable`` -> ``StartDeferred``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from warest.domain import ids, model, values
from warest.domain.errors import AlreadyExists, SessionNotFound


def _former(name: str) -> tuple[str, ...]:
    """The stored topic of a Session event under its former ``name``."""
    return (f"{__name__}:Session.{name}",)


class Status(StrEnum):
    CREATED = "created"
    QR = "qr"
    PAIRING = "pairing"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    SUSPENDED = "suspended"
    LOGGED_OUT = "logged_out"
    REPLACED = "replaced"
    CLOSED = "closed"
    BANNED = "banned"
    UNAVAILABLE = "unavailable"


class Session(model.Aggregate):
    registry: str
    name: str
    label: str
    auto_start: bool
    engine: str
    deleted: bool
    status: Status
    me_jid: str | None
    me_lid: str | None
    push_name: str | None
    incarnation: int

    class Created(model.Created, frozen=True, kw_only=True):
        """``incarnation``: 1 for a first creation, one more for each creation after a
        deletion; the ids of the session's chats, messages, webhook endpoints and
        idempotency records include it (``ids._scope``), so a session created again
        inherits nothing. 0 in events recorded before incarnations existed: such a session
        keeps the ids it has (they are those of incarnations 0 and 1)."""

        registry: str
        name: str
        label: str
        auto_start: bool = True
        engine: str = "sandbox"
        incarnation: int = 0

        def apply(self, aggregate: Any) -> None:
            aggregate.incarnation = self.incarnation
            aggregate.registry = self.registry
            aggregate.name = self.name
            aggregate.label = self.label
            aggregate.auto_start = self.auto_start
            aggregate.engine = self.engine
            aggregate.deleted = False
            aggregate.status = Status.CREATED
            aggregate.me_jid = None
            aggregate.me_lid = None
            aggregate.push_name = None

    class Configured(model.DomainEvent, frozen=True, kw_only=True):
        """Owner-set options changed. ``None`` means "unchanged". ``webhook_url`` is only in
        events written before webhook endpoints existed; it is read and ignored (a session's
        webhooks are ``WebhookEndpoint`` aggregates)."""

        label: str | None = None
        auto_start: bool | None = None
        webhook_url: str | None = None

        def apply(self, aggregate: Any) -> None:
            if self.label is not None:
                aggregate.label = self.label
            if self.auto_start is not None:
                aggregate.auto_start = self.auto_start

    class Deleted(model.DomainEvent, frozen=True, kw_only=True):
        """``registry`` and ``name`` say which read-model rows go with the session (None in
        events recorded before they were added)."""

        registry: str | None = None
        name: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    # -- lifecycle reported by the engine ---------------------------------------

    class QrIssued(model.DomainEvent, frozen=True, kw_only=True):
        """A login QR was shown (``attempt`` 1 starts a login); it is replaced after
        ``duration_s`` seconds. The QR string itself is a login secret and is not recorded
        (v1 recorded it as ``qr``; decoding drops it): the runtime keeps it in memory for the
        API and in ``session_login_qr`` for the webhook ``qr`` event."""

        duration_s: int
        attempt: int

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.pop("qr", None)

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.QR

    class PairingCodeIssued(model.DomainEvent, frozen=True, kw_only=True):
        """An 8-character code was issued, to enter on the phone ``phone``. The code itself
        is a login secret and is not recorded (v1 recorded it as ``code``; decoding drops
        it): the runtime keeps it in memory for the API and in ``session_login_code`` for the
        webhook ``pairing_code`` event."""

        phone: str

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.pop("code", None)

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.PAIRING

    class ConnectionStarted(model.DomainEvent, frozen=True, kw_only=True):
        """The engine began to connect (a login, or a restart after a ban or a stop);
        ``Opened`` says it succeeded. Stored as ``Session.Connecting`` before its rename."""

        renamed_from: ClassVar[tuple[str, ...]] = _former("Connecting")

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.CONNECTING

    class Opened(model.DomainEvent, frozen=True, kw_only=True):
        """Logged in and connected as ``jid`` (and ``lid``)."""

        jid: str
        lid: str | None = None
        push_name: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.OPEN
            aggregate.me_jid = self.jid
            aggregate.me_lid = self.lid
            aggregate.push_name = self.push_name

    class ConnectionLost(model.DomainEvent, frozen=True, kw_only=True):
        """The connection was lost, for ``reason`` (once per outage); the engine reconnects
        by itself. ``attempt`` is the engine's attempt when the loss was recorded: 1 (events
        written before outages were de-duplicated may carry later attempts). Stored as
        ``Session.Reconnecting`` before its rename."""

        attempt: int
        reason: str

        renamed_from: ClassVar[tuple[str, ...]] = _former("Reconnecting")

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.RECONNECTING

    class Suspended(model.DomainEvent, frozen=True, kw_only=True):
        """The connection has been lost for longer than the configured threshold; the
        engine keeps trying, less often. ``reason`` is the outage's; ``since`` its start."""

        reason: str
        since: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.SUSPENDED

    class LoggedOut(model.DomainEvent, frozen=True, kw_only=True):
        """The device was unlinked (from the phone or through the API)."""

        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.LOGGED_OUT
            aggregate.me_jid = None
            aggregate.me_lid = None

    class Replaced(model.DomainEvent, frozen=True, kw_only=True):
        """Another client took over the same device's stream."""

        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.REPLACED

    class Closed(model.DomainEvent, frozen=True, kw_only=True):
        """The connection was stopped (by the API, a QR timeout or a fatal error)."""

        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.CLOSED

    class Banned(model.DomainEvent, frozen=True, kw_only=True):
        """WhatsApp refused the account temporarily (``until``) or for good."""

        reason: str
        until: datetime | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.BANNED

    class StartDeferred(model.DomainEvent, frozen=True, kw_only=True):
        """The server could not start the session: its engine is not enabled there. The
        session still wants to run: it starts again with a server that has the engine.
        Stored as ``Session.Unavailable`` before its rename."""

        reason: str

        renamed_from: ClassVar[tuple[str, ...]] = _former("Unavailable")

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.UNAVAILABLE

    @classmethod
    def create(cls, registry: str, name: str, label: str | None, auto_start: bool, engine: str) -> Session:
        label = values.label(label)
        return cls._create(
            cls.Created,
            ids.session_id(registry, name),
            registry=registry,
            name=name,
            label=label or name,
            auto_start=auto_start,
            engine=engine,
            incarnation=1,
        )

    def recreate(self, label: str | None, auto_start: bool, engine: str) -> None:
        if not self.deleted:
            raise AlreadyExists(f"session '{self.name}' exists")
        label = values.label(label)
        self._trigger(
            Session.Created,
            registry=self.registry,
            name=self.name,
            label=label or self.name,
            auto_start=auto_start,
            engine=engine,
            incarnation=max(self.incarnation, 1) + 1,
        )

    def configure(self, label: str | None = None, auto_start: bool | None = None) -> None:
        """The session's own options (its webhooks are ``WebhookEndpoint`` aggregates)."""
        self._ensure_live()
        label = values.label(label)
        changed = {
            "label": label if label is not None and label != self.label else None,
            "auto_start": auto_start if auto_start is not None and auto_start != self.auto_start else None,
        }
        if any(v is not None for v in changed.values()):
            self._trigger(Session.Configured, **changed)

    def delete(self) -> None:
        self._ensure_live()
        self._trigger(Session.Deleted, registry=self.registry, name=self.name)

    def issue_qr(self, duration_s: int, attempt: int) -> None:
        self._ensure_live()
        self._trigger(Session.QrIssued, duration_s=duration_s, attempt=attempt)

    def issue_pairing_code(self, phone: str) -> None:
        self._ensure_live()
        self._trigger(Session.PairingCodeIssued, phone=phone)

    def connecting(self) -> None:
        """Not a transition while the session is connecting already or in an outage (a
        reconnect is part of the outage; ``Opened`` ends it)."""
        self._ensure_live()
        if self.status not in (Status.CONNECTING, *_OUTAGE):
            self._trigger(Session.ConnectionStarted)

    def opened(self, jid: str, lid: str | None, push_name: str | None) -> None:
        self._ensure_live()
        if (self.status, self.me_jid, self.me_lid, self.push_name) != (Status.OPEN, jid, lid, push_name):
            self._trigger(Session.Opened, jid=jid, lid=lid, push_name=push_name)

    def reconnecting(self, attempt: int, reason: str) -> None:
        """The connection was lost: recorded once per outage (later attempts change nothing)."""
        self._ensure_live()
        if self.status not in _OUTAGE:
            self._trigger(Session.ConnectionLost, attempt=attempt, reason=reason)

    def suspended(self, reason: str, since: datetime) -> None:
        """The outage has lasted: recorded once, and only during an outage."""
        self._ensure_live()
        if self.status == Status.RECONNECTING:
            self._trigger(Session.Suspended, reason=reason, since=since)

    def logged_out(self, reason: str) -> None:
        self._ensure_live()
        if self.status != Status.LOGGED_OUT:
            self._trigger(Session.LoggedOut, reason=reason)

    def replaced(self, reason: str) -> None:
        self._ensure_live()
        self._trigger(Session.Replaced, reason=reason)

    def closed(self, reason: str) -> None:
        self._ensure_live()
        if self.status not in (Status.CLOSED, Status.LOGGED_OUT):
            self._trigger(Session.Closed, reason=reason)

    def banned(self, reason: str, until: datetime | None) -> None:
        self._ensure_live()
        self._trigger(Session.Banned, reason=reason, until=until)

    def unavailable(self, reason: str) -> bool:
        """Records that the session could not be started here; returns whether it changed."""
        self._ensure_live()
        if self.status == Status.UNAVAILABLE:
            return False
        self._trigger(Session.StartDeferred, reason=reason)
        return True

    @property
    def is_open(self) -> bool:
        return not self.deleted and self.status == Status.OPEN

    def _ensure_live(self) -> None:
        if self.deleted:
            raise SessionNotFound(f"session '{self.name}' not found")


Session.Created.aggregate_class = Session

_OUTAGE = (Status.RECONNECTING, Status.SUSPENDED)


LIFECYCLE_EVENTS: tuple[type[model.DomainEvent], ...] = (
    Session.Created,
    Session.Deleted,
    Session.QrIssued,
    Session.PairingCodeIssued,
    Session.ConnectionStarted,
    Session.Opened,
    Session.ConnectionLost,
    Session.Suspended,
    Session.LoggedOut,
    Session.Replaced,
    Session.Closed,
    Session.Banned,
    Session.StartDeferred,
)
"""The events of a session's life (its configuration aside): what the registry shows and
what webhooks announce as ``session_status``."""
