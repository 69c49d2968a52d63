"""The chats read model: one row per (session, chat): last message, unread count, flags."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import psycopg
from eventsourcing.utils import get_topic

from warest.domain import ids
from warest.domain.chats import Chat
from warest.domain.jid import Jid
from warest.domain.messages import Message

_Cursor = psycopg.Cursor[Any]
_EVENTS = (
    Message.Queued,
    Message.Received,
    Message.Edited,
    Message.Revoked,
    Chat.Started,
    Chat.Muted,
    Chat.Archived,
    Chat.PinnedChanged,
    Chat.MarkedRead,
    Chat.Cleared,
)


def _kind(jid: str) -> str:
    try:
        return Jid.parse(jid).kind
    except ValueError:
        return "direct"


class ChatsProjection:
    name: str = "chats"
    tables: tuple[str, ...] = ("rm_chats",)
    topics: tuple[str, ...] = tuple(get_topic(c) for c in _EVENTS)

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Other events are not part of this read model."""

    @staticmethod
    def _ensure(cur: _Cursor, registry: str, session: str, jid: str, at: Any, position: int) -> None:
        cur.execute(
            "INSERT INTO rm_chats (id, registry, session_id, jid, kind, updated_at, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (ids.chat_id(registry, session, jid), registry, session, jid, _kind(jid), at, position),
        )

    def _message(self, event: Any, cur: _Cursor, position: int, from_me: bool, name: str | None) -> None:
        self._ensure(cur, event.registry, event.session, event.chat, event.timestamp, position)
        cur.execute(
            "UPDATE rm_chats SET last_message_id = %s, last_message_at = %s, last_message_text = %s,"
            " last_message_from_me = %s, name = COALESCE(%s, name),"
            " unread_count = unread_count + CASE WHEN %s THEN 0 ELSE 1 END,"
            " updated_at = %s, position = %s WHERE registry = %s AND session_id = %s AND jid = %s",
            (
                event.originator_id,
                event.timestamp,
                event.text,
                from_me,
                name,
                from_me,
                event.timestamp,
                position,
                event.registry,
                event.session,
                event.chat,
            ),
        )

    @process.register
    def _(self, event: Message.Queued, cur: _Cursor, position: int) -> None:
        self._message(event, cur, position, True, None)

    @process.register
    def _(self, event: Message.Received, cur: _Cursor, position: int) -> None:
        name = event.push_name if not event.from_me and _kind(event.chat) == "direct" else None
        self._message(event, cur, position, event.from_me, name)

    @process.register
    def _(self, event: Message.Edited, cur: _Cursor, position: int) -> None:
        cur.execute(
            "UPDATE rm_chats SET last_message_text = %s, updated_at = %s, position = %s"
            " WHERE last_message_id = %s",
            (event.text, event.timestamp, position, event.originator_id),
        )

    @process.register
    def _(self, event: Message.Revoked, cur: _Cursor, position: int) -> None:
        cur.execute(
            "UPDATE rm_chats SET last_message_text = NULL, updated_at = %s, position = %s"
            " WHERE last_message_id = %s",
            (event.timestamp, position, event.originator_id),
        )

    @process.register
    def _(self, event: Chat.Started, cur: _Cursor, position: int) -> None:
        self._ensure(cur, event.registry, event.session, event.jid, event.timestamp, position)

    @staticmethod
    def _chat(event: Any, cur: _Cursor, position: int, assignments: str, *values: Any) -> None:
        cur.execute(
            f"UPDATE rm_chats SET {assignments}, updated_at = %s, position = %s WHERE id = %s",
            (*values, event.timestamp, position, event.originator_id),
        )

    @process.register
    def _(self, event: Chat.Muted, cur: _Cursor, position: int) -> None:
        self._chat(event, cur, position, "muted_until = %s", event.until)

    @process.register
    def _(self, event: Chat.Archived, cur: _Cursor, position: int) -> None:
        self._chat(event, cur, position, "archived = %s", event.archived)

    @process.register
    def _(self, event: Chat.PinnedChanged, cur: _Cursor, position: int) -> None:
        self._chat(event, cur, position, "pinned = %s", event.pinned)

    @process.register
    def _(self, event: Chat.MarkedRead, cur: _Cursor, position: int) -> None:
        self._chat(event, cur, position, "read_at = %s, unread_count = 0", event.at)

    @process.register
    def _(self, event: Chat.Cleared, cur: _Cursor, position: int) -> None:
        self._chat(event, cur, position, "cleared_at = %s, unread_count = 0", event.at)
