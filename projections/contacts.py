"""The contacts read model: whom each session has heard from (name, numbers, last seen)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import psycopg
from eventsourcing.utils import get_topic

from warest.domain.jid import Jid
from warest.domain.messages import Message

_Cursor = psycopg.Cursor[Any]


class ContactsProjection:
    name: str = "contacts"
    tables: tuple[str, ...] = ("rm_contacts",)
    topics: tuple[str, ...] = (get_topic(Message.Received),)

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Other events are not part of this read model."""

    @process.register
    def _(self, event: Message.Received, cur: _Cursor, position: int) -> None:
        if event.from_me:
            return
        try:
            jid = Jid.parse(event.sender, field="sender")
        except ValueError:
            return
        if jid.kind != "direct":
            return
        cur.execute(
            "INSERT INTO rm_contacts (registry, session_id, jid, lid, phone, push_name, last_seen_at,"
            " position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (registry, session_id, jid) DO UPDATE SET"
            " push_name = COALESCE(EXCLUDED.push_name, rm_contacts.push_name),"
            " last_seen_at = GREATEST(EXCLUDED.last_seen_at, rm_contacts.last_seen_at),"
            " position = EXCLUDED.position",
            (
                event.registry,
                event.session,
                str(jid),
                str(jid) if jid.is_lid else None,
                jid.phone,
                event.push_name,
                event.sent_at or event.timestamp,
                position,
            ),
        )
