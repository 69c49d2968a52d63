"""Stream ownership (``rm_streams``): the registry and session each event stream belongs to.

Not every event names its tenant (session lifecycle events, ``Message.Sent`` and
``Message.StatusChanged`` do not), so the event history joins the log on this table. It
is fed by the creation events only. Claim streams are internal and never appear.
Pure function of the events, so a rebuild reproduces the table exactly.

A stream keeps the row of its first creation event (``ON CONFLICT DO NOTHING``), so a
page is written with one multi-row insert of each stream's first row in that page.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from projections._page import Folded, Page, PagedProjection, Writes
from warest.domain.chats import Chat
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.webhooks import WebhookEndpoint

_Cursor = psycopg.Cursor[Any]
_Row = tuple[UUID, str, str | None, str, int]
_COLUMNS = {
    "stream_id": "uuid",
    "registry": "text",
    "session_id": "text",
    "aggregate": "text",
    "created_position": "bigint",
}


class StreamsProjection(PagedProjection):
    name: str = "streams"
    tables: tuple[str, ...] = ("rm_streams",)
    topics: tuple[str, ...] = tuple(
        get_topic(c)
        for c in (
            User.Registered,
            Session.Created,
            Message.Queued,
            Message.Received,
            Chat.Started,
            WebhookEndpoint.Added,
        )
    )

    def fold(self, page: Page, cur: _Cursor, previous: object = None) -> _Rows:
        """The page's rows (nothing is read first)."""
        first: dict[UUID, _Row] = {}
        for event, position in page:
            row = _row(event, position)
            # Also appended again when a deleted session is re-created: the stream keeps
            # its first position.
            if row is not None and row[0] not in first:
                first[row[0]] = row
        return _Rows(list(first.values()))


class _Rows(Folded):
    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def store(self, out: Writes) -> None:
        out.upsert("rm_streams", "streams", _COLUMNS, self.rows, "ON CONFLICT (stream_id) DO NOTHING")


@singledispatch
def _row(event: Any, position: int) -> _Row | None:
    """Other events belong to streams already recorded."""
    return None


@_row.register
def _(event: User.Registered, position: int) -> _Row | None:
    return (event.originator_id, event.registry, None, "user", position)


@_row.register
def _(event: Session.Created, position: int) -> _Row | None:
    return (event.originator_id, event.registry, event.name, "session", position)


@_row.register
def _(event: Message.Queued, position: int) -> _Row | None:
    return (event.originator_id, event.registry, event.session, "message", position)


@_row.register
def _(event: Message.Received, position: int) -> _Row | None:
    return (event.originator_id, event.registry, event.session, "message", position)


@_row.register
def _(event: Chat.Started, position: int) -> _Row | None:
    return (event.originator_id, event.registry, event.session, "chat", position)


@_row.register
def _(event: WebhookEndpoint.Added, position: int) -> _Row | None:
    return (event.originator_id, event.registry, event.session, "webhook", position)
