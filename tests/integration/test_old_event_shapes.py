"""Events stored before the toggles were split (``Starred(starred=false)``,
``Chat.PinnedChanged``, ``Reacted(emoji="")`` ...) or before a rename (``Session.Connecting``,
``Reconnecting``, ``Unavailable``), or with a login secret (``PairingCodeIssued`` v1), still
reach the read models, the history and the webhook outbox, and project exactly as the new
events do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from eventsourcing.persistence import StoredEvent

from projections import ChatsProjection, MessagesProjection, RegistryProjection, StreamsProjection
from projections.outbox import OutboxProjection
from tests.integration.test_projections import rows_of
from warest.app.history import HistoryQuery, build_query, to_item
from warest.app.webhook_events import Renderer
from warest.domain import ids
from warest.domain.chats import Chat
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.infra.db.history import PgEventHistory
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.mapper import EventFromTheFuture
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CHAT = "6281111111111@s.whatsapp.net"
PEER = "6282222222222@s.whatsapp.net"


def _old(originator: uuid.UUID, version: int, topic: str, **fields: Any) -> StoredEvent:
    """A version-1 event as the code before the split stored it (no ``_v``)."""
    at = T0 + timedelta(seconds=version)
    state = {"originator_id": str(originator), "originator_version": version, "timestamp": at, **fields}
    return StoredEvent(originator, version, f"warest.domain.{topic}", msgspec.json.encode(state))


def _project(store: EventStoreApp, database_url: str, schema: str) -> None:
    for projection in (MessagesProjection(), ChatsProjection()):
        runner = ProjectionRunner(store, projection, database_url, schema)
        try:
            runner.catch_up()
            assert runner.position == store.max_position(), projection.name
        finally:
            runner.stop()


def _state(database_url: str, schema: str, registry: str) -> tuple[Any, ...]:
    message = rows_of(database_url, schema, f"SELECT starred, pinned_until FROM rm_messages WHERE registry = '{registry}'")  # noqa: E501
    reactions = rows_of(
        database_url, schema,
        "SELECT actor, emoji FROM rm_message_reactions r JOIN rm_messages m ON m.id = r.message_id"
        f" WHERE m.registry = '{registry}' ORDER BY actor",
    )  # fmt: skip
    chat = rows_of(database_url, schema, f"SELECT pinned, muted_until, archived FROM rm_chats WHERE registry = '{registry}'")  # noqa: E501
    return message, reactions, chat


def test_old_toggle_events_project_as_the_split_ones(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    # The same history twice: stored by the old code (registry OLD), recorded now (registry NEW).
    mid = ids.legacy_message_id("OLD", "s", "W1")  # the id the old code stored it under
    cid = ids.chat_id("OLD", "s", CHAT)
    at = T0.isoformat()
    until = (T0 + timedelta(hours=8)).isoformat()
    received = {"registry": "OLD", "session": "s", "chat": CHAT, "wa_id": "W1", "sender": CHAT, "text": "hi"}
    store.recorder.insert_events([
        _old(mid, 1, "messages:Message.Received", **received),
        _old(mid, 2, "messages:Message.Reacted", by=PEER, emoji="👍", at=at),
        _old(mid, 3, "messages:Message.Reacted", by=CHAT, emoji="🎉", at=at),
        _old(mid, 4, "messages:Message.Reacted", by=PEER, emoji="", at=at),
        _old(mid, 5, "messages:Message.Starred", starred=True),
        _old(mid, 6, "messages:Message.Starred", starred=False),
        _old(mid, 7, "messages:Message.Pinned", until=until, by=None),
        _old(mid, 8, "messages:Message.Pinned", until=None, by=None),
        _old(cid, 1, "chats:Chat.Started", registry="OLD", session="s", jid=CHAT),
        _old(cid, 2, "chats:Chat.Muted", until=until),
        _old(cid, 3, "chats:Chat.Muted", until=None),
        _old(cid, 4, "chats:Chat.Archived", archived=True),
        _old(cid, 5, "chats:Chat.PinnedChanged", pinned=True),
        _old(cid, 6, "chats:Chat.Archived", archived=False),
    ])  # fmt: skip

    message = Message.receive("NEW", "s", "W1", chat=CHAT, sender=CHAT, text="hi")
    message.react(PEER, "👍", T0)
    message.react(CHAT, "🎉", T0)
    message.react(PEER, "", T0)
    message.star(True)
    message.star(False)
    message.pin("24h", T0)
    message.pin(None, T0)
    chat = Chat.start("NEW", "s", CHAT)
    chat.mute(T0 + timedelta(hours=8))
    chat.mute(None)
    chat.archive(True)
    chat.pin(True)
    chat.archive(False)
    new_types = [type(e).__qualname__ for e in (*message.pending_events, *chat.pending_events)]
    assert {"Message.ReactionRemoved", "Message.Unstarred", "Message.Unpinned", "Chat.Unmuted",
            "Chat.Unarchived", "Chat.Pinned"} <= set(new_types)  # fmt: skip
    committer.save(message, chat)

    _project(store, database_url, schema)
    old, new = _state(database_url, schema, "OLD"), _state(database_url, schema, "NEW")
    assert old == new
    assert old == ([(False, None)], [(CHAT, "🎉")], [(True, None, False)])
    # The aggregates agree as well.
    assert (message.starred, message.pinned_until, message.reactions) == (False, None, {CHAT: "🎉"})


async def test_the_history_lists_an_event_from_the_future_and_the_runner_parks_it(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """A newer release's event (``_v`` above the class's) is not silently decoded as the
    older shape: the history lists it as unreadable (the page still answers), and a
    projection runner meets ``EventFromTheFuture`` (which the runner parks)."""
    session = Session.create("REG", "s", None, True, "sandbox")
    committer.save(session)
    newer = {"originator_id": str(session.id), "originator_version": 2, "timestamp": T0,
             "jid": "628@s.whatsapp.net", "colour": "new in v2", "_v": 2}  # fmt: skip
    store.recorder.insert_events(
        [StoredEvent(session.id, 2, "warest.domain.sessions:Session.Opened", msgspec.json.encode(newer))]
    )
    streams = ProjectionRunner(store, StreamsProjection(), database_url, schema)
    try:
        streams.catch_up()
    finally:
        streams.stop()
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        batch = await PgEventHistory(pool, store.mapper).events(HistoryQuery(registry="REG"), 0, 10)
    finally:
        await pool.close()
    created, opened = (to_item(e) for e in batch.events)
    assert created.type == "Session.Created"
    assert (opened.type, opened.time) == ("Session.Opened", T0)
    assert "version 2" in opened.data["unreadable"] and "upgrade warest" in opened.data["unreadable"]

    registry = ProjectionRunner(store, RegistryProjection(), database_url, schema)
    try:
        registry.process_batch()
    finally:
        registry.stop()
    parked = rows_of(database_url, schema, "SELECT name, position, topic, error FROM projection_parked")
    assert [row[:3] for row in parked] == [("registry", 2, "warest.domain.sessions:Session.Opened")]
    assert parked[0][3].startswith(EventFromTheFuture.__name__)


def _catch_up(store: EventStoreApp, database_url: str, schema: str, *projections: Any) -> None:
    for projection in projections:
        runner = ProjectionRunner(store, projection, database_url, schema)
        try:
            runner.catch_up()
            assert runner.position == store.max_position(), projection.name
        finally:
            runner.stop()


async def _history(store: EventStoreApp, database_url: str, schema: str, query: HistoryQuery) -> list[Any]:
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        return [to_item(e) for e in (await PgEventHistory(pool, store.mapper).events(query, 0, 100)).events]
    finally:
        await pool.close()


async def test_renamed_session_events_under_their_old_topics_decode_and_project_as_the_new_classes(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """``Session.Connecting``/``Reconnecting``/``Unavailable`` stored by the code before the
    rename, and a ``PairingCodeIssued`` v1 with its code: the registry read model, the history
    (new names, no code; the old names still filter) and the webhook renderer treat them as
    ``ConnectionStarted``/``ConnectionLost``/``StartDeferred`` and a code-less v2."""
    jid = "628111@s.whatsapp.net"
    old = {name: ids.session_id("OLD", name) for name in ("s1", "s2")}
    created = {"registry": "OLD", "label": "l", "auto_start": True, "engine": "sandbox", "incarnation": 1}
    store.recorder.insert_events([
        _old(old["s1"], 1, "sessions:Session.Created", name="s1", **created),
        _old(old["s1"], 2, "sessions:Session.PairingCodeIssued", code="SECR-ET12", phone="628111"),
        _old(old["s1"], 3, "sessions:Session.Connecting"),
        _old(old["s1"], 4, "sessions:Session.Opened", jid=jid, lid=None, push_name=None),
        _old(old["s1"], 5, "sessions:Session.Reconnecting", attempt=1, reason="connection lost"),
        _old(old["s2"], 1, "sessions:Session.Created", name="s2", **created),
        _old(old["s2"], 2, "sessions:Session.Connecting"),
        _old(old["s2"], 3, "sessions:Session.Unavailable", reason="engine 'sandbox' is not enabled"),
    ])  # fmt: skip
    s1 = Session.create("NEW", "s1", "l", True, "sandbox")
    s1.issue_pairing_code("628111")
    s1.connecting()
    s1.opened(jid, None, None)
    s1.reconnecting(1, "connection lost")
    s2 = Session.create("NEW", "s2", "l", True, "sandbox")
    s2.connecting()
    s2.unavailable("engine 'sandbox' is not enabled")
    new_types = [type(e).__qualname__ for e in (*s1.pending_events, *s2.pending_events)]
    committer.save(s1, s2)

    _catch_up(store, database_url, schema, RegistryProjection(), StreamsProjection())
    sql = "SELECT session_id, status, status_reason, me_jid FROM rm_sessions WHERE registry = '{}' ORDER BY 1"
    projected = rows_of(database_url, schema, sql.format("OLD"))
    assert projected == rows_of(database_url, schema, sql.format("NEW"))
    assert projected == [
        ("s1", "reconnecting", "connection lost", jid),
        ("s2", "unavailable", "engine 'sandbox' is not enabled", None),
    ]

    history = await _history(store, database_url, schema, HistoryQuery(registry="OLD"))
    assert [i.type for i in history] == new_types
    assert [i.type for i in history][:5] == ["Session.Created", "Session.PairingCodeIssued",
                                           "Session.ConnectionStarted", "Session.Opened", "Session.ConnectionLost"]  # fmt: skip  # noqa: E501
    assert history[1].data == {"phone": "628111"}  # the old event's code is dropped
    assert not [i for i in history if "SECR-ET12" in msgspec.json.encode(i.data).decode()]
    by_old_name = build_query("OLD", types=["Session.Connecting,Session.Reconnecting", "Session.Unavailable"])
    filtered = await _history(store, database_url, schema, by_old_name)
    assert [(i.session, i.type) for i in filtered] == [
        ("s1", "Session.ConnectionStarted"), ("s1", "Session.ConnectionLost"),
        ("s2", "Session.ConnectionStarted"), ("s2", "Session.StartDeferred"),
    ]  # fmt: skip

    # The webhook outbox reads the old topics and renders them as the new events.
    former = {f"warest.domain.sessions:Session.{n}" for n in ("Connecting", "Reconnecting", "Unavailable")}
    assert former <= set(OutboxProjection.topics) and former <= set(RegistryProjection.topics)
    renderer = Renderer()

    def rendered(stream: uuid.UUID) -> list[Any]:
        stored = store.recorder.select_events(stream)
        return [renderer.render(store.mapper.to_domain_event(e), lambda _: None) for e in stored]

    assert rendered(old["s1"]) == rendered(s1.id) and rendered(old["s2"]) == rendered(s2.id)
    assert ("session_status", {"tags": "reconnecting", "status": "reconnecting", "attempts": 1,
                               "reason": "connection lost"}) in rendered(old["s1"])  # fmt: skip
