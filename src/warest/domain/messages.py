"""The Message aggregate: one WhatsApp message of a session, outbound or inbound.

Its id is the uuid5 of (registry, session, WhatsApp message id), so a redelivered
inbound message collides on version 1 and is dropped, and a receipt finds its message
without a lookup. Statuses only move forward: queued → sent → server → delivered →
read → played; failed is terminal for an outbound message.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from warest.domain import ids, model
from warest.domain.errors import DomainError


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    SERVER = "server"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    RECEIVED = "received"


RANK = {
    Status.QUEUED: 0,
    Status.RECEIVED: 0,
    Status.SENT: 1,
    Status.SERVER: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
    Status.PLAYED: 5,
}
RECEIPT_STATUSES = (Status.SERVER, Status.DELIVERED, Status.READ, Status.PLAYED)


class Direction(StrEnum):
    OUT = "out"
    IN = "in"


def message_id(registry: str, session: str, wa_id: str) -> UUID:
    return ids.message_id(registry, session, wa_id)


class Message(model.Aggregate):
    registry: str
    session: str
    chat: str
    wa_id: str
    direction: Direction
    kind: str
    text: str | None
    status: Status
    failure: str | None
    attempts: int

    class Queued(model.Created, frozen=True, kw_only=True):
        """An outbound message accepted by the API, waiting in the session's queue.

        ``wa_id`` is the id warest generated; the engine may report another on ``Sent``.
        """

        registry: str
        session: str
        chat: str
        wa_id: str
        kind: str = "text"
        text: str | None = None
        mentions: list[str] = []
        reply_to: str | None = None
        idempotency_key: str | None = None

        def apply(self, aggregate: Any) -> None:
            _init(aggregate, self, Direction.OUT, Status.QUEUED)

    class Sent(model.DomainEvent, frozen=True, kw_only=True):
        """The engine handed the message to WhatsApp, which gave it id ``wa_id``."""

        wa_id: str
        sent_at: datetime
        attempts: int = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.SENT
            aggregate.wa_id = self.wa_id
            aggregate.attempts = self.attempts

    class SendFailed(model.DomainEvent, frozen=True, kw_only=True):
        """Sending was given up after ``attempts`` tries."""

        reason: str
        code: str | None = None
        attempts: int = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.FAILED
            aggregate.failure = self.reason
            aggregate.attempts = self.attempts

    class Received(model.Created, frozen=True, kw_only=True):
        """An inbound message (or one sent from the account's phone, ``from_me``)."""

        registry: str
        session: str
        chat: str
        wa_id: str
        sender: str
        from_me: bool = False
        kind: str = "text"
        text: str | None = None
        push_name: str | None = None
        mentions: list[str] = []
        quoted_id: str | None = None
        sent_at: datetime | None = None

        def apply(self, aggregate: Any) -> None:
            _init(aggregate, self, Direction.OUT if self.from_me else Direction.IN, Status.RECEIVED)

    class StatusChanged(model.DomainEvent, frozen=True, kw_only=True):
        """A receipt moved the message forward."""

        status: Status
        at: datetime
        by: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.status

    @classmethod
    def queue(
        cls,
        registry: str,
        session: str,
        chat: str,
        wa_id: str,
        text: str,
        mentions: list[str],
        reply_to: str | None,
        idempotency_key: str | None,
    ) -> Message:
        return cls._create(
            cls.Queued,
            message_id(registry, session, wa_id),
            registry=registry,
            session=session,
            chat=chat,
            wa_id=wa_id,
            text=text,
            mentions=mentions,
            reply_to=reply_to,
            idempotency_key=idempotency_key,
        )

    @classmethod
    def receive(cls, registry: str, session: str, wa_id: str, **fields: Any) -> Message:
        return cls._create(
            cls.Received,
            message_id(registry, session, wa_id),
            registry=registry,
            session=session,
            wa_id=wa_id,
            **fields,
        )

    def mark_sent(self, wa_id: str, sent_at: datetime, attempts: int) -> None:
        if self.status != Status.QUEUED:
            raise DomainError(f"message {self.wa_id} is {self.status}, not queued")
        self._trigger(Message.Sent, wa_id=wa_id, sent_at=sent_at, attempts=attempts)

    def mark_failed(self, reason: str, code: str | None, attempts: int) -> None:
        if self.status != Status.QUEUED:
            raise DomainError(f"message {self.wa_id} is {self.status}, not queued")
        self._trigger(Message.SendFailed, reason=reason, code=code, attempts=attempts)

    def apply_receipt(self, status: Status, at: datetime, by: str | None = None) -> bool:
        """Records a receipt if it moves the message forward; returns whether it did."""
        if status not in RECEIPT_STATUSES or self.status == Status.FAILED:
            return False
        if RANK[status] <= RANK.get(self.status, 0):
            return False
        self._trigger(Message.StatusChanged, status=status, at=at, by=by)
        return True

    @property
    def pending(self) -> bool:
        return self.status == Status.QUEUED


def _init(aggregate: Any, event: Any, direction: Direction, status: Status) -> None:
    aggregate.registry = event.registry
    aggregate.session = event.session
    aggregate.chat = event.chat
    aggregate.wa_id = event.wa_id
    aggregate.direction = direction
    aggregate.kind = event.kind
    aggregate.text = event.text
    aggregate.status = status
    aggregate.failure = None
    aggregate.attempts = 0


Message.Queued.aggregate_class = Message
Message.Received.aggregate_class = Message
