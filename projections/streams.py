"""Stream ownership (``rm_streams``): the registry and session each event stream belongs to.

Not every event names its tenant (session lifecycle events, ``Message.Sent`` and
``Message.StatusChanged`` do not), so the event history joins the log on this table. It
is fed by the creation events only. Claim streams are internal and never appear.
Pure function of the events, so a rebuild reproduces the table exactly.
"""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User

_Cursor = psycopg.Cursor[Any]


class StreamsProjection:
    name: str = "streams"
    tables: tuple[str, ...] = ("rm_streams",)
    topics: tuple[str, ...] = tuple(
        get_topic(c) for c in (User.Registered, Session.Created, Message.Queued, Message.Received)
    )

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Other events belong to streams already recorded."""

    @process.register
    def _(self, event: User.Registered, cur: _Cursor, position: int) -> None:
        _record(cur, event.originator_id, event.registry, None, "user", position)

    @process.register
    def _(self, event: Session.Created, cur: _Cursor, position: int) -> None:
        # Also appended again when a deleted session is re-created: the stream keeps
        # its first position.
        _record(cur, event.originator_id, event.registry, event.name, "session", position)

    @process.register
    def _(self, event: Message.Queued, cur: _Cursor, position: int) -> None:
        _record(cur, event.originator_id, event.registry, event.session, "message", position)

    @process.register
    def _(self, event: Message.Received, cur: _Cursor, position: int) -> None:
        _record(cur, event.originator_id, event.registry, event.session, "message", position)


def _record(
    cur: _Cursor, stream_id: UUID, registry: str, session_id: str | None, aggregate: str, position: int
) -> None:
    cur.execute(
        "INSERT INTO rm_streams (stream_id, registry, session_id, aggregate, created_position)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream_id) DO NOTHING",
        (stream_id, registry, session_id, aggregate, position),
    )
