"""The chats read model: one row per (session, chat): last message, unread count, flags.

A page of events is folded in memory: the chats it touches are read with one query (by
chat id; the chat id is the uuid5 of the row's key), and so are the chats whose last
message the page edits or revokes; every event is applied to them in log order exactly as
its statement would, and the result is written with one insert (new chats) and one
``UPDATE`` (changed chats). A busy chat is written once per page, not once per message.

A deleted session's chats go with it (``Session.Deleted``): a session created again under
its name is a new incarnation, whose chats have new ids and start empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, singledispatch
from operator import itemgetter
from typing import Any
from uuid import UUID

import psycopg

from projections._page import Folded, Page, PagedProjection, Writes, fold_page, select_rows
from warest.domain import ids
from warest.domain.chats import Chat
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid
from warest.domain.messages import Message
from warest.domain.model import stored_topics
from warest.domain.sessions import Session

_Cursor = psycopg.Cursor[Any]
_EVENTS = (
    Message.Queued,
    Message.Received,
    Message.Edited,
    Message.Revoked,
    Chat.Started,
    Chat.Muted,
    Chat.Unmuted,
    Chat.Archived,
    Chat.Unarchived,
    Chat.Pinned,
    Chat.Unpinned,
    Chat.MarkedRead,
    Chat.Cleared,
    Session.Deleted,
)
# Every column of rm_chats; a new row is written whole (the defaults of migration 0007 for
# the columns the insert does not set).
_COLUMNS = {
    "id": "uuid",
    "registry": "text",
    "session_id": "text",
    "jid": "text",
    "kind": "text",
    "name": "text",
    "last_message_id": "uuid",
    "last_message_at": "timestamptz",
    "last_message_text": "text",
    "last_message_from_me": "boolean",
    "unread_count": "integer",
    "pinned": "boolean",
    "muted_until": "timestamptz",
    "archived": "boolean",
    "read_at": "timestamptz",
    "cleared_at": "timestamptz",
    "updated_at": "timestamptz",
    "position": "bigint",
}
# The columns events change after the insert.
_MUTABLE = {c: t for c, t in _COLUMNS.items() if c not in ("id", "registry", "session_id", "jid", "kind")}
# Rows are lists in _COLUMNS order; these are the positions of the columns in them.
_AT = {c: i for i, c in enumerate(_COLUMNS)}
_ID, _NAME, _UNREAD, _UPDATED_AT, _POSITION = (
    _AT[c] for c in ("id", "name", "unread_count", "updated_at", "position")
)
_LAST_ID, _LAST_AT, _LAST_TEXT, _LAST_FROM_ME = (
    _AT[f"last_message_{c}"] for c in ("id", "at", "text", "from_me")
)
_MUTABLE_AT = tuple(_AT[c] for c in _MUTABLE)
_mutable_values = itemgetter(*_MUTABLE_AT)


@lru_cache(maxsize=1 << 16)
def _kind(jid: str) -> str:
    try:
        return Jid.parse(jid).kind
    except InvalidValue:  # an address this version does not know must not stop the read model
        return "direct"


_chat_id = lru_cache(maxsize=1 << 16)(ids.chat_id)


class _State(Folded):
    """The chats of one page: read once, changed in memory, written at the end.

    ``previous`` is the state of the page before, when the table is still where it left
    it: the rows it holds are copied from it instead of being read again.
    """

    def __init__(self, cur: _Cursor, page: Page, previous: _State | None) -> None:
        # Rows are keyed by the int of the chat id (a UUID hashes in Python code).
        wanted: dict[int, UUID] = {}
        shown: dict[int, UUID] = {}  # messages the page edits or revokes
        for event, _ in page:
            if isinstance(event, (Message.Queued, Message.Received)):
                chat_id = _chat_id(event.registry, event.session, event.chat, event.incarnation)
            elif isinstance(event, (Message.Edited, Message.Revoked)):
                shown[event.originator_id.int] = event.originator_id
                continue
            elif isinstance(event, Chat.Started):
                chat_id = _chat_id(event.registry, event.session, event.jid, event.incarnation)
            elif isinstance(event, Session.Deleted):
                continue
            else:
                chat_id = event.originator_id
            wanted[chat_id.int] = chat_id
        self.rows: dict[int, list[Any]] = {}
        before: dict[int, list[Any]] = previous.rows if previous is not None else {}
        if previous is not None:
            for key in wanted:
                row = before.get(key)
                if row is not None:
                    self.rows[key] = row.copy()
            for message_key in shown:  # chats the page before left showing an edited message
                for key in previous.showing.get(message_key, ()):
                    if before[key][_LAST_ID].int == message_key and key not in self.rows:
                        self.rows[key] = before[key].copy()
        missing = [chat_id for key, chat_id in wanted.items() if key not in self.rows]
        for r in select_rows(cur, "rm_chats", "id", "uuid", tuple(_MUTABLE), missing):
            self.rows[r[0].int] = self._loaded(r[0], r[1:])
        # Chats whose last message the page edits or revokes (rm_chats has no index on
        # last_message_id: one scan per page instead of one per event). The page before
        # has the newer version of the rows it holds.
        for r in select_rows(cur, "rm_chats", "last_message_id", "uuid", ("id", *_MUTABLE), shown.values()):
            key = r[1].int
            if key not in self.rows:
                row = before.get(key)
                self.rows[key] = row.copy() if row is not None else self._loaded(r[1], r[2:])
        self.new: list[int] = []
        self.dirty: set[int] = set()
        self.dropped: list[tuple[str, str]] = []  # sessions deleted: (registry, session_id)
        # message id (int) -> chats that showed it as their last message at some point of the
        # page (a superset: UPDATE ... WHERE last_message_id checks each candidate's row)
        self.showing: dict[int, list[int]] = {}
        for key, row in self.rows.items():
            if row[_LAST_ID] is not None:
                self.showing.setdefault(row[_LAST_ID].int, []).append(key)

    @staticmethod
    def _loaded(chat_id: UUID, values: Sequence[Any]) -> list[Any]:
        row: list[Any] = [None] * len(_COLUMNS)
        row[_ID] = chat_id
        for at, value in zip(_MUTABLE_AT, values, strict=True):
            row[at] = value
        return row

    def ensure(
        self, registry: str, session: str, jid: str, incarnation: int, at: Any, position: int
    ) -> list[Any]:
        """``INSERT ... ON CONFLICT DO NOTHING``: the chat's row."""
        chat_id = _chat_id(registry, session, jid, incarnation)
        key = chat_id.int
        row = self.rows.get(key)
        if row is None:
            # id, registry, session_id, jid, kind, name, last message (id, at, text, from me),
            # unread_count, pinned, muted_until, archived, read_at, cleared_at, updated_at, position
            row = [chat_id, registry, session, jid, _kind(jid), None, None, None, None, None, 0, False, None,
                   False, None, None, at, position]  # fmt: skip
            self.rows[key] = row
            self.new.append(key)
        return row

    def message(self, event: Any, position: int, from_me: bool, name: str | None) -> None:
        """_ensure, then ``UPDATE rm_chats SET last_message_* ..., name = COALESCE(%s, name),
        unread_count = unread_count + CASE WHEN from_me THEN 0 ELSE 1 END``."""
        row = self.ensure(
            event.registry, event.session, event.chat, event.incarnation, event.timestamp, position
        )
        row[_LAST_ID] = event.originator_id
        row[_LAST_AT] = event.timestamp
        row[_LAST_TEXT] = event.text
        row[_LAST_FROM_ME] = from_me
        if name is not None:
            row[_NAME] = name
        if not from_me:
            row[_UNREAD] += 1
        row[_UPDATED_AT] = event.timestamp
        row[_POSITION] = position
        key = row[_ID].int
        self.dirty.add(key)
        self.showing.setdefault(event.originator_id.int, []).append(key)

    def update(self, key: int, at: Any, position: int, **values: Any) -> None:
        """``UPDATE rm_chats SET <values>, updated_at, position WHERE id``."""
        row = self.rows.get(key)
        if row is None:
            return
        for column, value in values.items():
            row[_AT[column]] = value
        row[_UPDATED_AT] = at
        row[_POSITION] = position
        self.dirty.add(key)

    def update_showing(self, message_id: UUID, at: Any, position: int, **values: Any) -> None:
        """``UPDATE rm_chats SET <values>, updated_at, position WHERE last_message_id``."""
        for key in set(self.showing.get(message_id.int, ())):
            row = self.rows.get(key)
            if row is not None and row[_LAST_ID] == message_id:
                self.update(key, at, position, **values)

    def drop(self, registry: str, session: str) -> None:
        """``DELETE FROM rm_chats WHERE registry AND session_id``: the session was deleted."""
        gone = {
            k
            for k, row in self.rows.items()
            if row[_AT["registry"]] == registry and row[_AT["session_id"]] == session
        }
        for key in gone:
            del self.rows[key]
        self.new = [k for k in self.new if k not in gone]
        self.dirty -= gone
        for message_key, keys in list(self.showing.items()):
            self.showing[message_key] = [k for k in keys if k not in gone]
        self.dropped.append((registry, session))

    def store(self, out: Writes) -> None:
        out.delete("rm_chats", "chats_dropped", {"registry": "text", "session_id": "text"}, self.dropped)
        out.insert("rm_chats", _COLUMNS, [self.rows[i] for i in self.new])
        created = set(self.new)
        out.update(
            "rm_chats",
            "chats",
            {"id": "uuid"},
            _MUTABLE,
            [(self.rows[i][_ID], *_mutable_values(self.rows[i])) for i in self.dirty if i not in created],
        )


class ChatsProjection(PagedProjection):
    name: str = "chats"
    tables: tuple[str, ...] = ("rm_chats",)
    topics: tuple[str, ...] = stored_topics(*_EVENTS)

    def fold(self, page: Page, cur: _Cursor, previous: object = None) -> _State:
        """The page applied in memory (see ``_State``)."""
        return fold_page(_State, _apply, page, cur, previous)


@singledispatch
def _apply(event: Any, state: _State, position: int) -> None:
    """Other events are not part of this read model."""


@_apply.register
def _(event: Message.Queued, state: _State, position: int) -> None:
    state.message(event, position, True, None)


@_apply.register
def _(event: Message.Received, state: _State, position: int) -> None:
    name = event.push_name if not event.from_me and _kind(event.chat) == "direct" else None
    state.message(event, position, event.from_me, name)


@_apply.register
def _(event: Message.Edited, state: _State, position: int) -> None:
    state.update_showing(event.originator_id, event.timestamp, position, last_message_text=event.text)


@_apply.register
def _(event: Message.Revoked, state: _State, position: int) -> None:
    state.update_showing(event.originator_id, event.timestamp, position, last_message_text=None)


@_apply.register
def _(event: Chat.Started, state: _State, position: int) -> None:
    state.ensure(event.registry, event.session, event.jid, event.incarnation, event.timestamp, position)


@_apply.register
def _(event: Session.Deleted, state: _State, position: int) -> None:
    if event.registry is not None and event.name is not None:
        state.drop(event.registry, event.name)


@_apply.register
def _(event: Chat.Muted | Chat.Unmuted, state: _State, position: int) -> None:
    until = event.until if isinstance(event, Chat.Muted) else None
    state.update(event.originator_id.int, event.timestamp, position, muted_until=until)


@_apply.register
def _(event: Chat.Archived | Chat.Unarchived, state: _State, position: int) -> None:
    archived = isinstance(event, Chat.Archived)
    state.update(event.originator_id.int, event.timestamp, position, archived=archived)


@_apply.register
def _(event: Chat.Pinned | Chat.Unpinned, state: _State, position: int) -> None:
    state.update(event.originator_id.int, event.timestamp, position, pinned=isinstance(event, Chat.Pinned))


@_apply.register
def _(event: Chat.MarkedRead, state: _State, position: int) -> None:
    state.update(event.originator_id.int, event.timestamp, position, read_at=event.at, unread_count=0)


@_apply.register
def _(event: Chat.Cleared, state: _State, position: int) -> None:
    state.update(event.originator_id.int, event.timestamp, position, cleared_at=event.at, unread_count=0)
