"""The webhook outbox: one ``wh_events`` row per webhook event of a session and one
``wh_deliveries`` row per (endpoint, event), written in the same transaction as the
projection's tracking position, so every event is enqueued exactly once.

It follows the log in order and keeps its own directory of endpoints, sessions and user
names (``wh_endpoints``, ``wh_sessions``, ``wh_users``): an endpoint added at position
*p* receives exactly the matching events after *p*. A session with no endpoint of its own
uses the default endpoint of ``WEBHOOK_DEFAULT_URL`` when one is configured.

This is not a read model one may rebuild: delivery rows carry state the log does not
have. It is therefore not in ``projections.ALL`` and ``projections rebuild`` leaves it be.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from projections._page import Folded, PagedProjection, Writes, select_rows
from warest.app.webhook_events import (
    COMMAND_PREFIXES,
    MESSAGE_FOLLOW_UPS,
    MessageInfo,
    Renderer,
    SessionInfo,
    delivery_id,
    epoch_ms,
    event_id,
    finish_data,
    render_body,
    with_pairing_code,
    with_qr,
)
from warest.domain import ids
from warest.domain.ids import DEFAULT_WEBHOOK_ENDPOINT
from warest.domain.messages import Message
from warest.domain.model import DomainEvent, stored_topics
from warest.domain.sessions import LIFECYCLE_EVENTS, Session
from warest.domain.text import safe, safe_json, safe_optional
from warest.domain.users import User
from warest.domain.webhooks import WebhookEndpoint
from warest.infra.db.login_qr import ShownCode, shown_codes, shown_qrs
from warest.infra.eventstore.mapper import decode_state

_Cursor = psycopg.Cursor[Any]
MESSAGE_CACHE = 50_000


@dataclass(frozen=True)
class DefaultEndpoint:
    """``WEBHOOK_DEFAULT_URL``: used by sessions that have no endpoint of their own."""

    url: str
    events: tuple[str, ...] = ()


@dataclass
class _Endpoint:
    """An endpoint as the outbox knows it: the domain's ``WebhookEndpoint`` events apply to
    it as they do to the aggregate (same attribute names), plus its row bookkeeping."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    version: int
    position: int
    registry: str = ""
    session: str = ""
    session_id: UUID | None = None
    name: str = ""
    url: str = ""
    secret_sealed: str = ""
    previous_secret_sealed: str | None = None
    previous_until: datetime | None = None
    events: list[str] = field(default_factory=list)
    description: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_by: str | None = None
    removed: bool = False

    def wants(self, name: str) -> bool:
        return self.enabled and not self.removed and (not self.events or name in self.events)


_ENDPOINT_COLUMNS = {
    "id": "uuid",
    "registry": "text",
    "session": "text",
    "session_id": "uuid",
    "name": "text",
    "url": "text",
    "secret_sealed": "text",
    "previous_secret_sealed": "text",
    "previous_until": "timestamptz",
    "events": "text",
    "description": "text",
    "enabled": "bool",
    "disabled_reason": "text",
    "disabled_by": "text",
    "removed": "bool",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "version": "int4",
    "position": "int8",
}
_SESSION_COLUMNS = {"id": "uuid", "registry": "text", "name": "text", "label": "text", "deleted": "bool"}
_USER_COLUMNS = {"id": "uuid", "registry": "text", "username": "text"}
_EVENT_COLUMNS = {
    "position": "int8",
    "session_id": "uuid",
    "seq": "int8",
    "event": "text",
    "event_id": "text",
    "ts": "int8",
    "registry": "text",
    "session": "text",
    "label": "text",
    "username": "text",
    "body": "bytea",
}
_DELIVERY_COLUMNS = {
    "endpoint_id": "uuid",
    "position": "int8",
    "delivery_id": "text",
    "session_id": "uuid",
    "event": "text",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
_SEQ_COLUMNS = {"session_id": "uuid", "seq": "int8"}


def _excluded(columns: dict[str, str], key: str) -> str:
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return f"ON CONFLICT ({key}) DO UPDATE SET {sets}"


@dataclass
class _Directory:
    """What the outbox knows after a page: carried to the next page, else read back."""

    endpoints: dict[UUID, _Endpoint]
    sessions: dict[UUID, SessionInfo]
    session_deleted: dict[UUID, bool]
    users: dict[UUID, tuple[str, str]]  # user id -> (registry, username)
    usernames: dict[str, str]  # registry -> username
    seqs: dict[UUID, int]
    messages: OrderedDict[UUID, MessageInfo] = field(default_factory=OrderedDict)

    def copy(self) -> _Directory:
        return _Directory(
            dict(self.endpoints),
            dict(self.sessions),
            dict(self.session_deleted),
            dict(self.users),
            dict(self.usernames),
            dict(self.seqs),
            self.messages,  # a cache of immutable facts: shared
        )


class _Page(Folded):
    def __init__(self, directory: _Directory) -> None:
        self.directory = directory
        self.endpoints: dict[UUID, _Endpoint] = {}
        self.sessions: set[UUID] = set()
        self.users: set[UUID] = set()
        self.seqs: set[UUID] = set()
        self.events: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.qrs: dict[tuple[UUID, int], str] = {}  # the QR strings of the page's QrIssued
        self.codes: dict[UUID, ShownCode] = {}  # the pairing codes of its PairingCodeIssued

    def news(self) -> bool:
        """The dispatcher, which follows the outbox, looks only for new deliveries."""
        return bool(self.deliveries)

    def store(self, out: Writes) -> None:
        d = self.directory
        out.upsert(
            "wh_endpoints",
            "wh_endpoints",
            _ENDPOINT_COLUMNS,
            [_endpoint_row(e) for e in self.endpoints.values()],
            _excluded(_ENDPOINT_COLUMNS, "id"),
        )
        out.upsert(
            "wh_sessions",
            "wh_sessions",
            _SESSION_COLUMNS,
            [
                (s, d.sessions[s].registry, d.sessions[s].name, d.sessions[s].label, d.session_deleted[s])
                for s in sorted(self.sessions)
            ],
            _excluded(_SESSION_COLUMNS, "id"),
        )
        out.upsert(
            "wh_users",
            "wh_users",
            _USER_COLUMNS,
            [(u, *d.users[u]) for u in sorted(self.users)],
            _excluded(_USER_COLUMNS, "id"),
        )
        out.upsert(
            "wh_session_seq",
            "wh_session_seq",
            _SEQ_COLUMNS,
            [(s, d.seqs[s]) for s in sorted(self.seqs)],
            _excluded(_SEQ_COLUMNS, "session_id"),
        )
        out.insert("wh_events", _EVENT_COLUMNS, self.events)
        out.insert("wh_deliveries", _DELIVERY_COLUMNS, self.deliveries)


def _endpoint_row(e: _Endpoint) -> tuple[Any, ...]:
    return tuple(",".join(e.events) if c == "events" else getattr(e, c) for c in _ENDPOINT_COLUMNS)


_ENDPOINT_EVENTS: tuple[type[DomainEvent], ...] = (
    WebhookEndpoint.Added,
    WebhookEndpoint.Changed,
    WebhookEndpoint.SecretRotated,
    WebhookEndpoint.Disabled,
    WebhookEndpoint.Enabled,
    WebhookEndpoint.Removed,
)


_TOPIC_CLASSES: tuple[type[DomainEvent], ...] = (
    *LIFECYCLE_EVENTS,
    Session.Configured,
    User.Registered,
    User.Renamed,
    Message.Received,
    *MESSAGE_FOLLOW_UPS,
    *_ENDPOINT_EVENTS,
)


class OutboxProjection(PagedProjection):
    name: str = "webhook_outbox"
    tables: tuple[str, ...] = ()  # never truncated: see the module docstring
    topics: tuple[str, ...] = stored_topics(*_TOPIC_CLASSES)

    def __init__(
        self,
        events_table: str = "warest_events",
        default: DefaultEndpoint | None = None,
        command_prefixes: Sequence[str] = COMMAND_PREFIXES,
    ) -> None:
        self._events_table = events_table
        self._default = default
        self._renderer = Renderer(command_prefixes)

    def idle(self, folded: _Page) -> _Page:
        """What the runner keeps between catch-ups: the directory, not the page's rows (so a
        live batch does not read every endpoint, session and user again)."""
        return _Page(folded.directory)

    def fold(self, page: Sequence[tuple[Any, int]], cur: _Cursor, previous: Any = None) -> _Page:
        directory = previous.directory.copy() if isinstance(previous, _Page) else self._load(cur)
        out = _Page(directory)
        self._lookup_messages(page, cur, directory)
        out.qrs = shown_qrs(cur, {e.originator_id for e, _ in page if isinstance(e, Session.QrIssued)})
        coded = {e.originator_id for e, _ in page if isinstance(e, Session.PairingCodeIssued)}
        out.codes = shown_codes(cur, coded)
        now = datetime.now(UTC)
        for event, position in page:
            if isinstance(event, _ENDPOINT_EVENTS):
                self._endpoint(event, position, out)
            elif isinstance(event, (User.Registered, User.Renamed)):
                self._user(event, out)
            else:
                if isinstance(event, (Session.Created, Session.Configured, Session.Deleted)):
                    self._session(event, out)
                elif isinstance(event, Message.Received):
                    _remember(directory, event.originator_id, _message_info(event))
                self._enqueue(event, position, now, out)
        return out

    # -- directory --------------------------------------------------------------------

    def _load(self, cur: _Cursor) -> _Directory:
        endpoints: dict[UUID, _Endpoint] = {}
        for row in cur.execute(f"SELECT {', '.join(_ENDPOINT_COLUMNS)} FROM wh_endpoints").fetchall():
            values = dict(zip(_ENDPOINT_COLUMNS, row, strict=True))
            values["events"] = list(filter(None, values["events"].split(",")))
            endpoints[values["id"]] = _Endpoint(**values)
        sessions: dict[UUID, SessionInfo] = {}
        deleted: dict[UUID, bool] = {}
        users: dict[UUID, tuple[str, str]] = {}
        for uid, registry, username in cur.execute("SELECT id, registry, username FROM wh_users"):
            users[uid] = (registry, username)
        usernames = {registry: username for registry, username in users.values()}
        for sid, registry, name, label, is_deleted in cur.execute(
            "SELECT id, registry, name, label, deleted FROM wh_sessions"
        ):
            sessions[sid] = SessionInfo(sid, name, registry, label, usernames.get(registry))
            deleted[sid] = is_deleted
        seqs = dict(cur.execute("SELECT session_id, seq FROM wh_session_seq").fetchall())
        return _Directory(endpoints, sessions, deleted, users, usernames, seqs)

    def _endpoint(self, event: Any, position: int, out: _Page) -> None:
        endpoints = out.directory.endpoints
        current = endpoints.get(event.originator_id)
        if isinstance(event, WebhookEndpoint.Added):
            created = current.created_at if current is not None else event.timestamp
            row = _Endpoint(event.originator_id, created, event.timestamp, event.originator_version, position)
        elif current is None:
            return
        else:
            row = replace(
                current, updated_at=event.timestamp, version=event.originator_version, position=position
            )
        event.apply(row)
        endpoints[row.id] = row
        out.endpoints[row.id] = row

    def _user(self, event: User.Registered | User.Renamed, out: _Page) -> None:
        d = out.directory
        if isinstance(event, User.Registered):
            registry = event.registry
        elif event.originator_id in d.users:
            registry = d.users[event.originator_id][0]
        else:
            return
        d.users[event.originator_id] = (registry, event.username)
        d.usernames[registry] = event.username
        out.users.add(event.originator_id)
        for sid, info in d.sessions.items():
            if info.registry == registry:
                d.sessions[sid] = replace(info, username=event.username)

    def _session(self, event: Any, out: _Page) -> None:
        d = out.directory
        sid = event.originator_id
        if isinstance(event, Session.Created):
            d.sessions[sid] = SessionInfo(sid, event.name, event.registry, event.label,
                                          d.usernames.get(event.registry))  # fmt: skip
            d.session_deleted[sid] = False
        elif sid not in d.sessions:
            return
        elif isinstance(event, Session.Configured) and event.label is not None:
            d.sessions[sid] = replace(d.sessions[sid], label=event.label)
        elif isinstance(event, Session.Deleted):
            d.session_deleted[sid] = True
        out.sessions.add(sid)

    # -- events -----------------------------------------------------------------------

    def _enqueue(self, event: Any, position: int, now: datetime, out: _Page) -> None:
        d = out.directory
        rendered = self._renderer.render(event, d.messages.get)
        if rendered is None:
            return
        name, data = rendered
        if isinstance(event, Session.QrIssued):
            data = with_qr(data, out.qrs.get((event.originator_id, event.attempt)))
        elif isinstance(event, Session.PairingCodeIssued):
            shown = out.codes.get(event.originator_id)
            data = with_pairing_code(data, shown.of(event.phone, event.timestamp) if shown else None)
        session = self._session_of(event, d)
        if session is None:
            return
        seq = d.seqs.get(session.id, 0) + 1
        d.seqs[session.id] = seq
        out.seqs.add(session.id)
        eid = event_id(event.originator_id, event.originator_version)
        ts = epoch_ms(event.timestamp)
        body = _body(name, finish_data(data, session.name, eid, seq), ts, session)
        out.events.append(
            (position, session.id, seq, name, eid, ts, session.registry, session.name, session.label,
             session.username, body)
        )  # fmt: skip
        for endpoint_id in self._targets(session.id, name, d):
            out.deliveries.append(
                (endpoint_id, position, delivery_id(endpoint_id, eid), session.id, name, now, now)
            )

    def _targets(self, session_id: UUID, name: str, d: _Directory) -> list[UUID]:
        own = [e for e in d.endpoints.values() if e.session_id == session_id and not e.removed]
        if own:
            return [e.id for e in own if e.wants(name)]
        default = self._default
        if default is not None and (not default.events or name in default.events):
            return [DEFAULT_WEBHOOK_ENDPOINT]
        return []

    def _session_of(self, event: Any, d: _Directory) -> SessionInfo | None:
        if isinstance(event, LIFECYCLE_EVENTS):
            return d.sessions.get(event.originator_id)
        if isinstance(event, Message.Received):
            registry, name = event.registry, event.session
        else:
            info = d.messages.get(event.originator_id)
            if info is None:
                return None
            registry, name = info.registry, info.session
        return d.sessions.get(ids.session_id(registry, name))

    def _lookup_messages(self, page: Sequence[tuple[Any, int]], cur: _Cursor, d: _Directory) -> None:
        """The messages that reactions, edits and revocations of the page are about, from
        their first event in the log (a message created in the page is known by then)."""
        created = {e.originator_id for e, _ in page if isinstance(e, Message.Received)}
        wanted = {
            e.originator_id
            for e, _ in page
            if isinstance(e, MESSAGE_FOLLOW_UPS)
            and e.originator_id not in d.messages
            and e.originator_id not in created
        }
        rows = (
            select_rows(cur, self._events_table, "originator_id", "uuid", ("topic", "state"), wanted)
            if wanted
            else []
        )
        for originator_id, topic, state in rows:
            if topic in _CREATION_TOPICS:
                event = decode_state(topic, state, f" {originator_id} v1")
                if isinstance(event, (Message.Received, Message.Queued)):
                    _remember(d, originator_id, _message_info(event))


_CREATION_TOPICS = frozenset(stored_topics(Message.Received, Message.Queued))


def _body(name: str, data: dict[str, Any], ts: int, session: SessionInfo) -> bytes:
    """The rendered webhook, its text made ``safe`` as every read model's is: NUL (which
    JSON can carry but a receiver's ``jsonb`` cannot) and unpaired surrogates (which cannot
    be encoded) become U+FFFD. ``\\u0000`` is how the encoder writes NUL; a text that only
    looks like it is rendered again unchanged."""
    try:
        body = render_body(name, data, ts, session)
        if b"\\u0000" not in body:
            return body
    except UnicodeEncodeError:
        pass
    session = replace(session, label=safe(session.label), username=safe_optional(session.username))
    return render_body(name, safe_json(data), ts, session)


def _message_info(event: Message.Received | Message.Queued) -> MessageInfo:
    from_me = isinstance(event, Message.Queued) or bool(getattr(event, "from_me", False))
    return MessageInfo(event.registry, event.session, event.chat, event.wa_id, from_me)


def _remember(d: _Directory, message: UUID, info: MessageInfo) -> None:
    d.messages[message] = info
    if len(d.messages) > MESSAGE_CACHE:
        d.messages.popitem(last=False)
