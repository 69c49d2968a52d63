"""The contacts read model: whom each session has heard from (name, numbers, last seen).

One upsert per inbound message from a direct chat. The upserts of one page are folded per
contact first (the same ``COALESCE``/``GREATEST`` rules, applied in log order), so the
page is written with one multi-row upsert. A deleted session's contacts go with it
(``Session.Deleted``): a session created again under its name starts without any.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from eventsourcing.utils import get_topic

from projections._page import Folded, Page, PagedProjection, Writes
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid
from warest.domain.messages import Message
from warest.domain.sessions import Session

_Cursor = psycopg.Cursor[Any]
_COLUMNS = {
    "registry": "text",
    "session_id": "text",
    "jid": "text",
    "lid": "text",
    "phone": "text",
    "push_name": "text",
    "last_seen_at": "timestamptz",
    "position": "bigint",
}
_UPSERT = (
    "ON CONFLICT (registry, session_id, jid) DO UPDATE SET"
    " push_name = COALESCE(EXCLUDED.push_name, rm_contacts.push_name),"
    " last_seen_at = GREATEST(EXCLUDED.last_seen_at, rm_contacts.last_seen_at),"
    " position = EXCLUDED.position"
)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    """SQL ``GREATEST``: NULLs are ignored."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class ContactsProjection(PagedProjection):
    name: str = "contacts"
    tables: tuple[str, ...] = ("rm_contacts",)
    topics: tuple[str, ...] = (get_topic(Message.Received), get_topic(Session.Deleted))

    def fold(self, page: Page, cur: _Cursor, previous: object = None) -> _Rows:
        """The page's upserts folded per contact (nothing is read first)."""
        rows: dict[tuple[str, str, str], list[Any]] = {}
        dropped: list[tuple[str, str]] = []
        for event, position in page:
            if isinstance(event, Session.Deleted):
                if event.registry is not None and event.name is not None:
                    session = (event.registry, event.name)
                    rows = {key: row for key, row in rows.items() if key[:2] != session}
                    dropped.append(session)
                continue
            if not isinstance(event, Message.Received) or event.from_me:
                continue
            contact = _contact(event.sender)
            if contact is None:
                continue
            jid, lid, phone = contact
            key = (event.registry, event.session, jid)
            seen = event.sent_at or event.timestamp
            row = rows.get(key)
            if row is None:
                rows[key] = [*key, lid, phone, event.push_name, seen, position]
            else:  # what the upsert does to the row the earlier events of this page left
                row[5] = event.push_name if event.push_name is not None else row[5]
                row[6] = _greatest(seen, row[6])
                row[7] = position
        return _Rows(list(rows.values()), dropped)


class _Rows(Folded):
    def __init__(self, rows: list[list[Any]], dropped: list[tuple[str, str]]) -> None:
        self.rows = rows
        self.dropped = dropped

    def store(self, out: Writes) -> None:
        out.delete(
            "rm_contacts", "contacts_dropped", {"registry": "text", "session_id": "text"}, self.dropped
        )
        out.upsert("rm_contacts", "contacts", _COLUMNS, self.rows, _UPSERT)


@lru_cache(maxsize=1 << 16)
def _contact(sender: str) -> tuple[str, str | None, str | None] | None:
    """(jid, lid, phone) of a direct sender; None for groups and unparseable senders."""
    try:
        jid = Jid.parse(sender, field="sender")
    except InvalidValue:  # an address this version does not know must not stop the read model
        return None
    if jid.kind != "direct":
        return None
    return str(jid), str(jid) if jid.is_lid else None, jid.phone
