"""The messages read model: one row per message, its status timeline, reactions, edits."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import psycopg
from eventsourcing.utils import get_topic

from warest.domain.messages import Message

_Cursor = psycopg.Cursor[Any]
_EVENTS = (
    Message.Queued,
    Message.Sent,
    Message.SendFailed,
    Message.Received,
    Message.StatusChanged,
    Message.Reacted,
    Message.Edited,
    Message.Revoked,
    Message.Starred,
    Message.Pinned,
    Message.DeletedForMe,
)


class MessagesProjection:
    name: str = "messages"
    tables: tuple[str, ...] = ("rm_messages", "rm_message_status", "rm_message_reactions", "rm_message_edits")
    topics: tuple[str, ...] = tuple(get_topic(c) for c in _EVENTS)

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Other events are not part of this read model."""

    def _insert(
        self,
        event: Any,
        cur: _Cursor,
        position: int,
        direction: str,
        status: str,
        sender: str | None,
        push_name: str | None,
        quoted: str | None,
        sent_at: Any,
    ) -> None:
        cur.execute(
            "INSERT INTO rm_messages (id, registry, session_id, chat, wa_id, direction, kind, text, sender,"
            " push_name, quoted_id, mentions, status, created_at, sent_at, updated_at, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                event.originator_id,
                event.registry,
                event.session,
                event.chat,
                event.wa_id,
                direction,
                event.kind,
                event.text,
                sender,
                push_name,
                quoted,
                list(event.mentions),
                status,
                event.timestamp,
                sent_at,
                event.timestamp,
                position,
            ),
        )
        self._timeline(cur, event.originator_id, status, event.timestamp, None, position)

    @staticmethod
    def _timeline(
        cur: _Cursor, message_id: Any, status: str, at: Any, detail: str | None, position: int
    ) -> None:
        cur.execute(
            "INSERT INTO rm_message_status (message_id, status, at, detail, position)"
            " VALUES (%s, %s, %s, %s, %s)",
            (message_id, status, at, detail, position),
        )

    @staticmethod
    def _update(cur: _Cursor, event: Any, position: int, assignments: str, *values: Any) -> None:
        cur.execute(
            f"UPDATE rm_messages SET {assignments}, updated_at = %s, position = %s WHERE id = %s",
            (*values, event.timestamp, position, event.originator_id),
        )

    @process.register
    def _(self, event: Message.Queued, cur: _Cursor, position: int) -> None:
        self._insert(event, cur, position, "out", "queued", None, None, event.reply_to, None)

    @process.register
    def _(self, event: Message.Received, cur: _Cursor, position: int) -> None:
        direction = "out" if event.from_me else "in"
        self._insert(
            event,
            cur,
            position,
            direction,
            "received",
            event.sender,
            event.push_name,
            event.quoted_id,
            event.sent_at,
        )

    @process.register
    def _(self, event: Message.Sent, cur: _Cursor, position: int) -> None:
        self._update(
            cur, event, position, "status = 'sent', wa_id = %s, sent_at = %s", event.wa_id, event.sent_at
        )
        self._timeline(cur, event.originator_id, "sent", event.sent_at, None, position)

    @process.register
    def _(self, event: Message.SendFailed, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "status = 'failed', failure = %s", event.reason)
        self._timeline(cur, event.originator_id, "failed", event.timestamp, event.reason, position)

    @process.register
    def _(self, event: Message.StatusChanged, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "status = %s", event.status.value)
        self._timeline(cur, event.originator_id, event.status.value, event.at, event.by, position)

    @process.register
    def _(self, event: Message.Reacted, cur: _Cursor, position: int) -> None:
        if event.emoji:
            cur.execute(
                "INSERT INTO rm_message_reactions (message_id, actor, emoji, at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (message_id, actor) DO UPDATE SET emoji = EXCLUDED.emoji, at = EXCLUDED.at",
                (event.originator_id, event.by, event.emoji, event.at),
            )
        else:
            cur.execute(
                "DELETE FROM rm_message_reactions WHERE message_id = %s AND actor = %s",
                (event.originator_id, event.by),
            )
        self._update(cur, event, position, "status = status")

    @process.register
    def _(self, event: Message.Edited, cur: _Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO rm_message_edits (message_id, seq, previous_text, text, actor, at)"
            " SELECT id, edit_count + 1, text, %s, %s, %s FROM rm_messages WHERE id = %s",
            (event.text, event.by, event.at, event.originator_id),
        )
        self._update(cur, event, position, "text = %s, edit_count = edit_count + 1", event.text)

    @process.register
    def _(self, event: Message.Revoked, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "revoked = true")
        self._timeline(cur, event.originator_id, "revoked", event.at, event.by, position)

    @process.register
    def _(self, event: Message.Starred, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "starred = %s", event.starred)

    @process.register
    def _(self, event: Message.Pinned, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "pinned_until = %s", event.until)

    @process.register
    def _(self, event: Message.DeletedForMe, cur: _Cursor, position: int) -> None:
        self._update(cur, event, position, "deleted = true")
