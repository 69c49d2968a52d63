"""The Chat aggregate: what the account's owner sets on one conversation of a session.

Messages live in their own aggregates; the chat holds mute, archive, pin, the read mark
and clearing. Its id is the uuid5 of (registry, session, incarnation of the session, chat
JID).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from warest.domain import ids, model

_PINNED_CHANGED = f"{__name__}:Chat.PinnedChanged"


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
        """Muted until ``until``. v1 unmuted with ``until`` None: those are ``Unmuted`` now."""

        until: datetime

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            return model.split_off_when_unset(state, "until", Chat.Unmuted)

        def apply(self, aggregate: Any) -> None:
            aggregate.muted_until = self.until

    class Unmuted(model.DomainEvent, frozen=True, kw_only=True):
        split_from: ClassVar[tuple[str, ...]] = (f"{__name__}:Chat.Muted",)

        def apply(self, aggregate: Any) -> None:
            aggregate.muted_until = None

    class Archived(model.DomainEvent, frozen=True, kw_only=True):
        """v1 carried ``archived: bool``; its ``false`` events are ``Unarchived`` now."""

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            return None if state.pop("archived", True) else Chat.Unarchived

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = True

    class Unarchived(model.DomainEvent, frozen=True, kw_only=True):
        split_from: ClassVar[tuple[str, ...]] = (f"{__name__}:Chat.Archived",)

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = False

    class Pinned(model.DomainEvent, frozen=True, kw_only=True):
        """Pinned to the top of the chat list. Was ``PinnedChanged(pinned: bool)`` (v1); its
        ``false`` events are ``Unpinned`` now."""

        class_version: ClassVar[int] = 2
        renamed_from: ClassVar[tuple[str, ...]] = (_PINNED_CHANGED,)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> type[model.DomainEvent] | None:
            return None if state.pop("pinned", True) else Chat.Unpinned

        def apply(self, aggregate: Any) -> None:
            aggregate.pinned = True

    class Unpinned(model.DomainEvent, frozen=True, kw_only=True):
        split_from: ClassVar[tuple[str, ...]] = (_PINNED_CHANGED,)

        def apply(self, aggregate: Any) -> None:
            aggregate.pinned = False

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
            if until is None:
                self._trigger(Chat.Unmuted)
            else:
                self._trigger(Chat.Muted, until=until)

    def archive(self, archived: bool) -> None:
        if archived != self.archived:
            self._trigger(Chat.Archived if archived else Chat.Unarchived)

    def pin(self, pinned: bool) -> None:
        if pinned != self.pinned:
            self._trigger(Chat.Pinned if pinned else Chat.Unpinned)

    def mark_read(self, at: datetime, wa_ids: list[str]) -> None:
        self._trigger(Chat.MarkedRead, at=at, wa_ids=wa_ids)

    def clear(self, at: datetime) -> None:
        self._trigger(Chat.Cleared, at=at)


Chat.Started.aggregate_class = Chat
