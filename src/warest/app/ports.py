"""Ports: what the application needs from infrastructure, as Protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from warest.app.records import PendingOutbound, SessionRecord, UserRecord

A = TypeVar("A")


class ConcurrencyConflict(Exception):
    """Another command changed the aggregate first (optimistic concurrency)."""


class EventStore(Protocol):
    async def save(self, *aggregates: Any) -> int:
        """Records the pending events atomically; returns the highest new log position.

        Raises ConcurrencyConflict when a version was already taken.
        """
        ...

    async def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate rebuilt from its events, or None."""
        ...


class ReadModelWaiter(Protocol):
    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        """Waits until every read model has processed ``position``."""
        ...

    async def wait_latest(self, timeout: float = 5.0) -> bool:
        """Waits until the read models include everything committed so far."""
        ...


class RegistryQueries(Protocol):
    async def user_by_id(self, user_id: UUID) -> UserRecord | None: ...
    async def user_by_username(self, username: str) -> UserRecord | None: ...
    async def user_by_key_digest(self, digest: str) -> UserRecord | None: ...
    async def users(self) -> list[UserRecord]: ...
    async def session(self, registry: str, session_id: str) -> SessionRecord | None: ...
    async def sessions(self, registry: str) -> list[SessionRecord]: ...


class MessagingQueries(Protocol):
    async def autostart_sessions(self) -> list[SessionRecord]:
        """Sessions to start when the server starts (auto-start on, not stopped or logged out)."""
        ...

    async def pending_outbound(self, registry: str, session_id: str) -> list[PendingOutbound]: ...
    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None: ...


class LoginQrs(Protocol):
    """The login secrets a session shows now (its QR or its pairing code), kept outside the
    event log: the webhook outbox adds the QR to the ``qr`` event of ``Session.QrIssued`` and
    the code to the ``pairing_code`` event of ``Session.PairingCodeIssued``."""

    async def put(self, session_id: UUID, attempt: int, qr: str) -> None: ...
    async def put_pairing_code(self, session_id: UUID, phone: str, code: str, issued_at: datetime) -> None:
        """``issued_at``: the runtime's clock, before the event is recorded (the outbox gives
        the code only to an event recorded after it)."""
        ...


class LoginGuardStore(Protocol):
    async def locked_until(self, username: str, address: str) -> datetime | None: ...
    async def record_failure(self, username: str, address: str, now: datetime) -> int:
        """Counts one failure (a stale count restarts); returns the new count."""
        ...

    async def lock(self, username: str, address: str, until: datetime) -> None: ...
    async def clear(self, username: str, address: str) -> None: ...


class AuthSessionStore(Protocol):
    async def create(self, token_digest: str, user_id: UUID, expires_at: datetime) -> None: ...
    async def user_id(self, token_digest: str, now: datetime) -> UUID | None: ...
    async def revoke(self, token_digest: str, now: datetime) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password_hash: str, password: str) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
