"""The Chat aggregate: what the account's owner sets on one conversation of a session.

Messages live in their own aggregates; the chat holds mute, archive, pin, the read mark
and clearing. Its id is the uuid5 of (registry, session, incarnation of the session, chat
JID).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warest.domain import ids, model


class Chat(model.Aggregate):
    registry: str
    session: str
    jid: str
    muted_until: datetime | None
    archived: bool
    pinned: bool
    read_at: datetime | None
    cleared_at: datetime | None

    class Started(model.Created, frozen=True, kw_only=True):
        """``incarnation``: the session's (0 in events recorded before incarnations)."""

        registry: str
        session: str
        jid: str
        incarnation: int = 0

        def apply(self, aggregate: Any) -> None:
            aggregate.registry = self.registry
            aggregate.session = self.session
            aggregate.jid = self.jid
            aggregate.muted_until = None
            aggregate.archived = False
            aggregate.pinned = False
            aggregate.read_at = None
            aggregate.cleared_at = None

    class Muted(model.DomainEvent, frozen=True, kw_only=True):
        """Muted until ``until`` (None: unmuted)."""

        until: datetime | None

        def apply(self, aggregate: Any) -> None:
            aggregate.muted_until = self.until

    class Archived(model.DomainEvent, frozen=True, kw_only=True):
        archived: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = self.archived

    class PinnedChanged(model.DomainEvent, frozen=True, kw_only=True):
        pinned: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.pinned = self.pinned

    class MarkedRead(model.DomainEvent, frozen=True, kw_only=True):
        """Every message received up to ``at`` is read (read receipts were sent)."""

        at: datetime
        wa_ids: list[str] = []

        def apply(self, aggregate: Any) -> None:
            aggregate.read_at = self.at

    class Cleared(model.DomainEvent, frozen=True, kw_only=True):
        """Messages up to ``at`` are hidden from this chat (clear all)."""

        at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.cleared_at = self.at

    @classmethod
    def start(cls, registry: str, session: str, jid: str, incarnation: int = 1) -> Chat:
        return cls._create(
            cls.Started,
            ids.chat_id(registry, session, jid, incarnation),
            registry=registry,
            session=session,
            jid=jid,
            incarnation=incarnation,
        )

    def mute(self, until: datetime | None) -> None:
        if until != self.muted_until:
            self._trigger(Chat.Muted, until=until)

    def archive(self, archived: bool) -> None:
        if archived != self.archived:
            self._trigger(Chat.Archived, archived=archived)

    def pin(self, pinned: bool) -> None:
        if pinned != self.pinned:
            self._trigger(Chat.PinnedChanged, pinned=pinned)

    def mark_read(self, at: datetime, wa_ids: list[str]) -> None:
        self._trigger(Chat.MarkedRead, at=at, wa_ids=wa_ids)

    def clear(self, at: datetime) -> None:
        self._trigger(Chat.Cleared, at=at)


Chat.Started.aggregate_class = Chat
