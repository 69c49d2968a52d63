"""Messaging read models: the WhatsApp-id index and the outbound messages still pending.

A page is folded in memory: the pending rows its ``Sent``/``SendFailed`` events remove are
read first (one query), the index entries are inserted in log order (the first one of a
key wins, as ``ON CONFLICT DO NOTHING`` does), and only the net change is written: the
pending rows that existed before the page and are gone, the new ones still pending.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from projections._page import Folded, Page, PagedProjection, Writes, fold_page, select_rows
from warest.domain.messages import Message

_Cursor = psycopg.Cursor[Any]
_PENDING = {
    "message_id": "uuid",
    "registry": "text",
    "session_id": "text",
    "local_id": "text",
    "chat": "text",
    "text": "text",
    "mentions": "text[]",
    "reply_to": "text",
    "queued_at": "timestamptz",
    "position": "bigint",
}
_INDEX = {"registry": "text", "session_id": "text", "wa_id": "text", "message_id": "uuid"}
_KEY = ("registry", "session_id")


class _State(Folded):
    """The page's view of both tables.

    ``previous`` is the state of the page before, when the tables are still where it left
    them: what it knows of a pending row is not read again.
    """

    def __init__(self, cur: _Cursor, page: Page, previous: _State | None) -> None:
        settled = {e.originator_id for e, _ in page if isinstance(e, (Message.Sent, Message.SendFailed))}
        # message_id -> (registry, session_id) of its pending row, None if there is none
        self.known: dict[UUID, tuple[str, str] | None] = {}
        if previous is not None:
            for message_id in settled:
                if message_id in previous.known:
                    self.known[message_id] = previous.known[message_id]
            settled -= self.known.keys()
        for r in select_rows(cur, "rm_pending_outbound", "message_id", "uuid", _KEY, settled):
            self.known[r[0]] = (r[1], r[2])
        # the rows known to exist before the page (others are not touched by it)
        self.before = {m for m, row in self.known.items() if row is not None}
        self.added: dict[UUID, list[Any]] = {}  # rows inserted by this page, still pending
        self.index: dict[tuple[str, str, str], UUID] = {}

    def add(self, row: list[Any]) -> None:
        """``INSERT``: a message is queued once (version 1 of its stream), so the row is new.
        If it is not, this raises as the ``INSERT`` would (or the ``INSERT`` does, for a row
        the page did not read)."""
        message_id = row[0]
        if self.known.get(message_id) is not None:
            raise ValueError(f"message {message_id} is already pending")
        self.added[message_id] = row
        self.known[message_id] = (row[1], row[2])

    def delete(self, message_id: UUID) -> tuple[str, str] | None:
        """``DELETE ... RETURNING registry, session_id``."""
        found = self.known.get(message_id)
        if found is not None:
            self.known[message_id] = None
            self.added.pop(message_id, None)
        return found

    def add_index(self, registry: str, session: str, wa_id: str, message_id: UUID) -> None:
        self.index.setdefault((registry, session, wa_id), message_id)

    def store(self, out: Writes) -> None:
        removed = [(m,) for m in self.before if self.known[m] is None or m in self.added]
        out.delete("rm_pending_outbound", "pending_sent", {"message_id": "uuid"}, removed)
        out.insert("rm_pending_outbound", _PENDING, list(self.added.values()))
        out.upsert(
            "rm_message_index",
            "index",
            _INDEX,
            [(*key, message_id) for key, message_id in self.index.items()],
            "ON CONFLICT (registry, session_id, wa_id) DO NOTHING",
        )


class MessagingProjection(PagedProjection):
    name: str = "messaging"
    tables: tuple[str, ...] = ("rm_message_index", "rm_pending_outbound")
    topics: tuple[str, ...] = tuple(
        get_topic(c) for c in (Message.Queued, Message.Sent, Message.SendFailed, Message.Received)
    )

    def fold(self, page: Page, cur: _Cursor, previous: object = None) -> _State:
        """The page applied in memory (see ``_State``)."""
        return fold_page(_State, _apply, page, cur, previous)


@singledispatch
def _apply(event: Any, state: _State, position: int) -> None:
    """Other events are not part of this read model."""


@_apply.register
def _(event: Message.Queued, state: _State, position: int) -> None:
    state.add(
        [
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
        ]
    )
    state.add_index(event.registry, event.session, event.wa_id, event.originator_id)


@_apply.register
def _(event: Message.Sent, state: _State, position: int) -> None:
    row = state.delete(event.originator_id)
    if row is not None:
        state.add_index(row[0], row[1], event.wa_id, event.originator_id)


@_apply.register
def _(event: Message.SendFailed, state: _State, position: int) -> None:
    state.delete(event.originator_id)


@_apply.register
def _(event: Message.Received, state: _State, position: int) -> None:
    state.add_index(event.registry, event.session, event.wa_id, event.originator_id)
