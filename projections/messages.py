"""The messages read model: one row per message, its status timeline, reactions, edits.

A page of events is folded in memory: the rows of the messages the page changes (but did
not create) are read with one query, every event is applied to them in log order exactly
as its statement would, and the result is written with one statement per table: new
messages, timeline and edits through ``COPY``, changed messages with one ``UPDATE``,
reactions with one upsert and one delete.
"""

from __future__ import annotations

from functools import singledispatch
from operator import itemgetter
from typing import Any
from uuid import UUID

import psycopg

from projections._page import Folded, Page, PagedProjection, Writes, fold_page, select_rows
from warest.domain.messages import Message
from warest.domain.model import stored_topics
from warest.domain.sessions import Session

_Cursor = psycopg.Cursor[Any]
_EVENTS = (
    Message.Queued,
    Message.Sent,
    Message.SendFailed,
    Message.Received,
    Message.StatusChanged,
    Message.Reacted,
    Message.ReactionRemoved,
    Message.Edited,
    Message.Revoked,
    Message.Starred,
    Message.Unstarred,
    Message.Pinned,
    Message.Unpinned,
    Message.DeletedForMe,
    Session.Deleted,
)
# Every column of rm_messages; a new row is written whole (the defaults of migration 0007
# for the columns the creation events do not set).
_COLUMNS = {
    "id": "uuid",
    "registry": "text",
    "session_id": "text",
    "chat": "text",
    "wa_id": "text",
    "direction": "text",
    "kind": "text",
    "text": "text",
    "sender": "text",
    "push_name": "text",
    "quoted_id": "text",
    "mentions": "text[]",
    "status": "text",
    "failure": "text",
    "edit_count": "integer",
    "revoked": "boolean",
    "starred": "boolean",
    "pinned_until": "timestamptz",
    "deleted": "boolean",
    "created_at": "timestamptz",
    "sent_at": "timestamptz",
    "updated_at": "timestamptz",
    "position": "bigint",
}
# The columns events change after the creation.
_MUTABLE = {
    c: _COLUMNS[c]
    for c in (
        "wa_id",
        "text",
        "status",
        "failure",
        "edit_count",
        "revoked",
        "starred",
        "pinned_until",
        "deleted",
        "sent_at",
        "updated_at",
        "position",
    )
}
_TIMELINE = {
    "message_id": "uuid",
    "status": "text",
    "at": "timestamptz",
    "detail": "text",
    "position": "bigint",
}
_EDITS = {
    "message_id": "uuid",
    "seq": "integer",
    "previous_text": "text",
    "text": "text",
    "actor": "text",
    "at": "timestamptz",
}
_REACTION_KEY = {"message_id": "uuid", "actor": "text"}
_REACTIONS = {**_REACTION_KEY, "emoji": "text", "at": "timestamptz"}


# Rows are lists in _COLUMNS order; these are the positions of the columns in them.
_AT = {c: i for i, c in enumerate(_COLUMNS)}
_ID, _STATUS, _WA_ID, _SENT_AT, _TEXT, _EDIT_COUNT, _UPDATED_AT, _POSITION = (
    _AT[c] for c in ("id", "status", "wa_id", "sent_at", "text", "edit_count", "updated_at", "position")
)
_MUTABLE_AT = tuple(_AT[c] for c in _MUTABLE)
_mutable_values = itemgetter(*_MUTABLE_AT)
_CREATIONS = (Message.Queued, Message.Received)


class _State(Folded):
    """The rows of one page: read once, changed in memory, written at the end.

    ``previous`` is the state of the page before, when the tables are still where it left
    them: the rows it holds are copied from it instead of being read again.
    """

    def __init__(self, cur: _Cursor, page: Page, previous: _State | None) -> None:
        # Rows are keyed by the int of the message id (a UUID hashes in Python code).
        created: set[int] = set()
        changed: dict[int, UUID] = {}
        for event, _ in page:
            if isinstance(event, _CREATIONS):
                created.add(event.originator_id.int)
            elif not isinstance(event, Session.Deleted):
                changed[event.originator_id.int] = event.originator_id
        wanted = changed.keys() - created
        self.rows: dict[int, list[Any]] = {}
        if previous is not None:
            for key in wanted:
                carried = previous.rows.get(key)
                if carried is not None:
                    self.rows[key] = carried.copy()
            wanted -= self.rows.keys()
        for r in select_rows(cur, "rm_messages", "id", "uuid", tuple(_MUTABLE), [changed[k] for k in wanted]):
            row: list[Any] = [None] * len(_COLUMNS)
            row[_ID] = r[0]
            for at, value in zip(_MUTABLE_AT, r[1:], strict=True):
                row[at] = value
            self.rows[r[0].int] = row
        self.new: list[int] = []
        self.dirty: set[int] = set()
        self.timeline: list[tuple[Any, ...]] = []
        self.edits: list[tuple[Any, ...]] = []
        self.reactions: dict[tuple[UUID, str], tuple[Any, ...] | None] = {}
        self.dropped: list[tuple[str, str]] = []  # sessions deleted: (registry, session_id)

    def create(self, row: list[Any]) -> None:
        # A message is created once (version 1 of its stream); a row left from before the
        # page makes the COPY fail, as the INSERT would.
        key = row[_ID].int
        self.rows[key] = row
        self.new.append(key)

    def row(self, event: Any) -> list[Any] | None:
        return self.rows.get(event.originator_id.int)

    def update(self, event: Any, position: int) -> list[Any] | None:
        """``UPDATE rm_messages SET ..., updated_at, position WHERE id``: the row to set the
        other columns of (None: there is no such row, the statement changes nothing)."""
        key = event.originator_id.int
        row = self.rows.get(key)
        if row is not None:
            row[_UPDATED_AT] = event.timestamp
            row[_POSITION] = position
            self.dirty.add(key)
        return row

    def status(self, message_id: UUID, status: str, at: Any, detail: str | None, position: int) -> None:
        self.timeline.append((message_id, status, at, detail, position))

    def drop(self, registry: str, session: str) -> None:
        """``DELETE FROM rm_messages WHERE registry AND session_id``: the session was deleted
        (a session created again under its name starts without messages). Rows of this page
        changed before are updated after the delete, which then changes nothing; their
        timeline, reactions and edits stay, unread (they are read by message id)."""
        registry_at, session_at = _AT["registry"], _AT["session_id"]
        gone = {
            k
            for k in self.new
            if self.rows[k][registry_at] == registry and self.rows[k][session_at] == session
        }
        for key in gone:
            del self.rows[key]
        self.new = [k for k in self.new if k not in gone]
        self.dirty -= gone
        self.dropped.append((registry, session))

    def store(self, out: Writes) -> None:
        out.delete(
            "rm_messages", "messages_dropped", {"registry": "text", "session_id": "text"}, self.dropped
        )
        out.insert("rm_messages", _COLUMNS, [self.rows[i] for i in self.new])
        created = set(self.new)
        out.update(
            "rm_messages",
            "messages",
            {"id": "uuid"},
            _MUTABLE,
            [(self.rows[i][_ID], *_mutable_values(self.rows[i])) for i in self.dirty if i not in created],
        )
        out.insert("rm_message_status", _TIMELINE, self.timeline)
        gone = [key for key, row in self.reactions.items() if row is None]
        out.delete("rm_message_reactions", "reactions_gone", _REACTION_KEY, gone)
        out.upsert(
            "rm_message_reactions",
            "reactions",
            _REACTIONS,
            [row for row in self.reactions.values() if row is not None],
            "ON CONFLICT (message_id, actor) DO UPDATE SET emoji = EXCLUDED.emoji, at = EXCLUDED.at",
        )
        out.insert("rm_message_edits", _EDITS, self.edits)


class MessagesProjection(PagedProjection):
    name: str = "messages"
    tables: tuple[str, ...] = ("rm_messages", "rm_message_status", "rm_message_reactions", "rm_message_edits")
    topics: tuple[str, ...] = stored_topics(*_EVENTS)

    def fold(self, page: Page, cur: _Cursor, previous: object = None) -> _State:
        """The page applied in memory (see ``_State``)."""
        return fold_page(_State, _apply, page, cur, previous)


@singledispatch
def _apply(event: Any, state: _State, position: int) -> None:
    """Other events are not part of this read model."""


def _insert(
    event: Any,
    state: _State,
    position: int,
    direction: str,
    status: str,
    sender: str | None,
    push_name: str | None,
    quoted: str | None,
    sent_at: Any,
) -> None:
    # In _COLUMNS order: id, registry, session_id, chat, wa_id, direction, kind, text, sender,
    # push_name, quoted_id, mentions, status, failure, edit_count, revoked, starred,
    # pinned_until, deleted, created_at, sent_at, updated_at, position.
    state.create(
        [
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
            None,
            0,
            False,
            False,
            None,
            False,
            event.timestamp,
            sent_at,
            event.timestamp,
            position,
        ]
    )
    state.status(event.originator_id, status, event.timestamp, None, position)


@_apply.register
def _(event: Message.Queued, state: _State, position: int) -> None:
    _insert(event, state, position, "out", "queued", None, None, event.reply_to, None)


@_apply.register
def _(event: Message.Received, state: _State, position: int) -> None:
    direction = "out" if event.from_me else "in"
    _insert(
        event,
        state,
        position,
        direction,
        "received",
        event.sender,
        event.push_name,
        event.quoted_id,
        event.sent_at,
    )


@_apply.register
def _(event: Message.Sent, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_STATUS], row[_WA_ID], row[_SENT_AT] = "sent", event.wa_id, event.sent_at
    state.status(event.originator_id, "sent", event.sent_at, None, position)


@_apply.register
def _(event: Message.SendFailed, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_STATUS], row[_AT["failure"]] = "failed", event.reason
    state.status(event.originator_id, "failed", event.timestamp, event.reason, position)


@_apply.register
def _(event: Message.StatusChanged, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_STATUS] = event.status.value
    state.status(event.originator_id, event.status.value, event.at, event.by, position)


@_apply.register
def _(event: Message.Reacted, state: _State, position: int) -> None:
    # The last change of a (message, actor) in the page decides: upsert or delete.
    state.reactions[(event.originator_id, event.by)] = (event.originator_id, event.by, event.emoji, event.at)
    state.update(event, position)


@_apply.register
def _(event: Message.ReactionRemoved, state: _State, position: int) -> None:
    state.reactions[(event.originator_id, event.by)] = None
    state.update(event, position)


@_apply.register
def _(event: Message.Edited, state: _State, position: int) -> None:
    row = state.row(event)
    if row is not None:  # INSERT ... SELECT id, edit_count + 1, text, ... FROM rm_messages WHERE id
        seq = row[_EDIT_COUNT] + 1
        state.edits.append((event.originator_id, seq, row[_TEXT], event.text, event.by, event.at))
        state.update(event, position)
        row[_TEXT], row[_EDIT_COUNT] = event.text, seq


@_apply.register
def _(event: Message.Revoked, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_AT["revoked"]] = True
    state.status(event.originator_id, "revoked", event.at, event.by, position)


@_apply.register
def _(event: Message.Starred | Message.Unstarred, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_AT["starred"]] = isinstance(event, Message.Starred)


@_apply.register
def _(event: Message.Pinned | Message.Unpinned, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_AT["pinned_until"]] = event.until if isinstance(event, Message.Pinned) else None


@_apply.register
def _(event: Message.DeletedForMe, state: _State, position: int) -> None:
    row = state.update(event, position)
    if row is not None:
        row[_AT["deleted"]] = True


@_apply.register
def _(event: Session.Deleted, state: _State, position: int) -> None:
    if event.registry is not None and event.name is not None:
        state.drop(event.registry, event.name)
