"""The Message aggregate: one WhatsApp message of a session, outbound or inbound.

Its id is the uuid5 of the session's incarnation and WhatsApp's key of the message
(chat, from me, WhatsApp message id), so a redelivered inbound message collides on version 1
and is dropped, two messages with one id in two chats are two messages, and a receipt finds
its message without a lookup (messages recorded before this key: ``ids.legacy_message_id``).
Statuses only move forward: queued → sent → server → delivered → read → played; failed is
terminal for an outbound message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from warest.domain import ids, model
from warest.domain.errors import DomainError, InvalidValue


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


def message_id(
    registry: str, session: str, chat: str, from_me: bool, wa_id: str, incarnation: int = 1
) -> UUID:
    return ids.message_id(registry, session, chat, from_me, wa_id, incarnation)


EDIT_WINDOW = timedelta(minutes=15)
REVOKE_WINDOW = timedelta(hours=60)
PIN_DURATIONS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
MAX_EMOJI = 16


class ActionNotAllowed(DomainError):
    """WhatsApp would refuse this action on this message (own messages only, time windows)."""


class Message(model.Aggregate):
    registry: str
    session: str
    chat: str
    wa_id: str
    direction: Direction
    kind: str
    text: str | None
    sender: str | None
    status: Status
    failure: str | None
    attempts: int
    sent_at: datetime | None
    reactions: dict[str, str]
    edits: int
    revoked: bool
    starred: bool
    pinned_until: datetime | None
    deleted: bool
    incarnation: int
    edited_at: datetime | None

    class Queued(model.Created, frozen=True, kw_only=True):
        """An outbound message accepted by the API, waiting in the session's queue.

        ``wa_id`` is the WhatsApp id warest chose for it: the message is sent with it (every
        time, so a re-send after a crash is one message for the recipient), and the
        aggregate's id is derived from it. An engine that cannot choose ids reports another
        on ``Sent``.

        ``sender`` is the account (the session's own JID) it was queued from: it leaves
        from that account or not at all (None in events recorded before it existed).
        ``incarnation`` is the session's (0: recorded before incarnations existed).
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
        sender: str | None = None
        incarnation: int = 0

        def apply(self, aggregate: Any) -> None:
            _init(aggregate, self, Direction.OUT, Status.QUEUED)

    class Sent(model.DomainEvent, frozen=True, kw_only=True):
        """The engine handed the message to WhatsApp, which knows it as ``wa_id`` (the queued
        id, unless the engine chose another: that one is then claimed for the message by a
        ``Claim`` stored in the same transaction)."""

        wa_id: str
        sent_at: datetime
        attempts: int = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.status = Status.SENT
            aggregate.wa_id = self.wa_id
            aggregate.attempts = self.attempts
            aggregate.sent_at = self.sent_at

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
        incarnation: int = 0

        def apply(self, aggregate: Any) -> None:
            _init(aggregate, self, Direction.OUT if self.from_me else Direction.IN, Status.RECEIVED)
            aggregate.sent_at = self.sent_at or self.timestamp

    class StatusChanged(model.DomainEvent, frozen=True, kw_only=True):
        """A receipt moved the message forward."""

        status: Status
        at: datetime
        by: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.status

    class Reacted(model.DomainEvent, frozen=True, kw_only=True):
        """``by`` reacted with ``emoji`` (replacing their earlier reaction).

        v1 also removed a reaction with an empty emoji: those are ``ReactionRemoved`` now.
        """

        by: str
        emoji: str
        at: datetime

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            if state.get("emoji"):
                return None
            state.pop("emoji", None)
            return Message.ReactionRemoved

        def apply(self, aggregate: Any) -> None:
            aggregate.reactions[self.by] = self.emoji

    class ReactionRemoved(model.DomainEvent, frozen=True, kw_only=True):
        """``by`` took their reaction back."""

        by: str
        at: datetime

        split_from: ClassVar[tuple[str, ...]] = (f"{__name__}:Message.Reacted",)

        def apply(self, aggregate: Any) -> None:
            aggregate.reactions.pop(self.by, None)

    class Edited(model.DomainEvent, frozen=True, kw_only=True):
        """The sender changed the text (earlier texts stay in the log)."""

        text: str
        by: str | None = None
        at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.text = self.text
            aggregate.edits += 1
            aggregate.edited_at = self.at

    class Revoked(model.DomainEvent, frozen=True, kw_only=True):
        """Deleted for everyone."""

        by: str | None = None
        at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked = True

    class Starred(model.DomainEvent, frozen=True, kw_only=True):
        """Starred by the account's owner. v1 carried ``starred: bool``; its ``false`` events
        are ``Unstarred`` now."""

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            return None if state.pop("starred", True) else Message.Unstarred

        def apply(self, aggregate: Any) -> None:
            aggregate.starred = True

    class Unstarred(model.DomainEvent, frozen=True, kw_only=True):
        split_from: ClassVar[tuple[str, ...]] = (f"{__name__}:Message.Starred",)

        def apply(self, aggregate: Any) -> None:
            aggregate.starred = False

    class Pinned(model.DomainEvent, frozen=True, kw_only=True):
        """Pinned in the chat until ``until``. v1 unpinned with ``until`` None: those events
        are ``Unpinned`` now."""

        until: datetime
        by: str | None = None

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            return model.split_off_when_unset(state, "until", Message.Unpinned)

        def apply(self, aggregate: Any) -> None:
            aggregate.pinned_until = self.until

    class Unpinned(model.DomainEvent, frozen=True, kw_only=True):
        by: str | None = None

        split_from: ClassVar[tuple[str, ...]] = (f"{__name__}:Message.Pinned",)

        def apply(self, aggregate: Any) -> None:
            aggregate.pinned_until = None

    class DeletedForMe(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    # -- actions -----------------------------------------------------------------

    @property
    def own(self) -> bool:
        return self.direction == Direction.OUT

    def react(self, by: str, emoji: str, at: datetime) -> None:
        if emoji and (len(emoji) > MAX_EMOJI or not emoji.strip()):
            raise InvalidValue("emoji", "must be one emoji")
        self._ensure_visible()
        if self.reactions.get(by, "") == emoji:
            return
        if emoji:
            self._trigger(Message.Reacted, by=by, emoji=emoji, at=at)
        else:
            self._trigger(Message.ReactionRemoved, by=by, at=at)

    def edit(self, text: str, at: datetime, by: str | None = None, *, enforce: bool = True) -> None:
        """``enforce`` is off for edits reported by WhatsApp (they happened already). Such an
        edit is recorded once: one that leaves the text as it is (WhatsApp delivering it
        again, or echoing this account's own edit), or an older edit arriving after a newer
        one, records nothing."""
        if not enforce and (text == self.text or (self.edited_at is not None and at < self.edited_at)):
            return
        if enforce:
            if not self.own:
                raise ActionNotAllowed("only your own messages can be edited")
            if self.kind != "text" or self.sent_at is None:
                raise ActionNotAllowed("only sent text messages can be edited")
            if at - self.sent_at > EDIT_WINDOW:
                raise ActionNotAllowed("messages can be edited for 15 minutes after sending")
            if not text.strip():
                raise InvalidValue("text", "must not be empty")
        self._ensure_visible()
        self._trigger(Message.Edited, text=text, by=by, at=at)

    def revoke(self, at: datetime, by: str | None = None, *, enforce: bool = True) -> None:
        if self.revoked:
            return
        if enforce:
            if not self.own:
                raise ActionNotAllowed("only your own messages can be deleted for everyone")
            if self.sent_at is None:
                raise ActionNotAllowed("the message was not sent")
            if at - self.sent_at > REVOKE_WINDOW:
                raise ActionNotAllowed("messages can be deleted for everyone for 60 hours after sending")
        self._trigger(Message.Revoked, by=by, at=at)

    def star(self, starred: bool) -> None:
        self._ensure_visible()
        if self.starred != starred:
            self._trigger(Message.Starred if starred else Message.Unstarred)

    def pin(self, duration: str | None, at: datetime, by: str | None = None) -> None:
        self._ensure_visible()
        if duration is None:
            if self.pinned_until is not None:
                self._trigger(Message.Unpinned, by=by)
            return
        if duration not in PIN_DURATIONS:
            raise InvalidValue("duration", f"must be one of {', '.join(PIN_DURATIONS)}")
        self._trigger(Message.Pinned, until=at + PIN_DURATIONS[duration], by=by)

    def delete_for_me(self) -> None:
        if not self.deleted:
            self._trigger(Message.DeletedForMe)

    def _ensure_visible(self) -> None:
        if self.revoked:
            raise ActionNotAllowed("the message was deleted for everyone")
        if self.deleted:
            raise ActionNotAllowed("the message was deleted")

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
        *,
        sender: str | None = None,
        incarnation: int = 1,
    ) -> Message:
        return cls._create(
            cls.Queued,
            message_id(registry, session, chat, True, wa_id, incarnation),
            registry=registry,
            session=session,
            chat=chat,
            wa_id=wa_id,
            text=text,
            mentions=mentions,
            reply_to=reply_to,
            idempotency_key=idempotency_key,
            sender=sender,
            incarnation=incarnation,
        )

    @classmethod
    def receive(
        cls,
        registry: str,
        session: str,
        wa_id: str,
        *,
        chat: str,
        from_me: bool = False,
        incarnation: int = 1,
        **fields: Any,
    ) -> Message:
        return cls._create(
            cls.Received,
            message_id(registry, session, chat, from_me, wa_id, incarnation),
            registry=registry,
            session=session,
            wa_id=wa_id,
            chat=chat,
            from_me=from_me,
            incarnation=incarnation,
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
        """Records a receipt if it moves the message forward; returns whether it did.

        A receipt for a message still ``queued`` is WhatsApp's word that it has the message
        under the id it was queued with, though its ``Sent`` was not stored (the save failed
        after the engine sent it): ``Sent`` is recorded first, and the message is not sent
        again."""
        if status not in RECEIPT_STATUSES or self.status == Status.FAILED:
            return False
        if RANK[status] <= RANK.get(self.status, 0):
            return False
        if self.status == Status.QUEUED:
            self._trigger(Message.Sent, wa_id=self.wa_id, sent_at=at, attempts=max(1, self.attempts))
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
    aggregate.sender = getattr(event, "sender", None)
    aggregate.failure = None
    aggregate.attempts = 0
    aggregate.sent_at = None
    aggregate.reactions = {}
    aggregate.edits = 0
    aggregate.revoked = False
    aggregate.starred = False
    aggregate.pinned_until = None
    aggregate.deleted = False
    aggregate.incarnation = event.incarnation
    aggregate.edited_at = None


Message.Queued.aggregate_class = Message
Message.Received.aggregate_class = Message
