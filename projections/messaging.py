"""Messaging read models: the WhatsApp-id index and the outbound messages still pending."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import psycopg
from eventsourcing.utils import get_topic

from warest.domain.messages import Message

_Cursor = psycopg.Cursor[Any]


class MessagingProjection:
    name: str = "messaging"
    tables: tuple[str, ...] = ("rm_message_index", "rm_pending_outbound")
    topics: tuple[str, ...] = tuple(
        get_topic(c) for c in (Message.Queued, Message.Sent, Message.SendFailed, Message.Received)
    )

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Other events are not part of this read model."""

    @process.register
    def _(self, event: Message.Queued, cur: _Cursor, position: int) -> None:
        cur.execute(
            "INSERT INTO rm_pending_outbound (message_id, registry, session_id, local_id, chat, text,"
            " mentions, reply_to, queued_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                event.originator_id,
                event.registry,
                event.session,
                event.wa_id,
                event.chat,
                event.text,
                list(event.mentions),
                event.reply_to,
                event.timestamp,
                position,
            ),
        )
        self._index(cur, event.registry, event.session, event.wa_id, event.originator_id)

    @process.register
    def _(self, event: Message.Sent, cur: _Cursor, position: int) -> None:
        row = cur.execute(
            "DELETE FROM rm_pending_outbound WHERE message_id = %s RETURNING registry, session_id",
            (event.originator_id,),
        ).fetchone()
        if row is not None:
            self._index(cur, row[0], row[1], event.wa_id, event.originator_id)

    @process.register
    def _(self, event: Message.SendFailed, cur: _Cursor, position: int) -> None:
        cur.execute("DELETE FROM rm_pending_outbound WHERE message_id = %s", (event.originator_id,))

    @process.register
    def _(self, event: Message.Received, cur: _Cursor, position: int) -> None:
        self._index(cur, event.registry, event.session, event.wa_id, event.originator_id)

    @staticmethod
    def _index(cur: _Cursor, registry: str, session: str, wa_id: str, message_id: Any) -> None:
        cur.execute(
            "INSERT INTO rm_message_index (registry, session_id, wa_id, message_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (registry, session_id, wa_id) DO NOTHING",
            (registry, session, wa_id, message_id),
        )
