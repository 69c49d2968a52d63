"""The webhook outbox on the real event store: exactly-once enqueue, fan-out by endpoint and
filter, an endpoint only gets events after it exists, per-session sequence numbers, follow-up
events of messages created pages earlier, and the same result page by page or pipelined."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg

from projections.outbox import DefaultEndpoint, OutboxProjection
from warest.domain.ids import DEFAULT_WEBHOOK_ENDPOINT
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role
from warest.domain.webhooks import WebhookEndpoint
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner

REG = "REGX"


def rows(database_url: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return conn.execute(query).fetchall()


def outbox(store: EventStoreApp, database_url: str, schema: str, **kw: Any) -> ProjectionRunner:
    projection = OutboxProjection(store.events_table, kw.pop("default", None))
    return ProjectionRunner(store, projection, database_url, schema, **kw)


def inbound(session: str, wa_id: str, text: str) -> Message:
    return Message.receive(
        REG, session, wa_id, chat="628@s.whatsapp.net", sender="628@s.whatsapp.net", text=text
    )


def scenario(committer: GroupCommitter) -> None:
    """Two sessions; an endpoint for s1 (all events) and one for s1 (reactions only) added
    after the first message; s2 has none (default endpoint when configured)."""
    committer.save(User.register(uuid4(), "shop", REG, Role.USER, password_hash=None, api_key_digest=None))
    for name in ("s1", "s2"):
        committer.save(Session.create(REG, name, None, True, "sandbox"))
    committer.save(inbound("s1", "m0", "before any endpoint"))
    committer.save(WebhookEndpoint.add(REG, "s1", "all", "https://a.example/h", "v1:sealed"))
    committer.save(
        WebhookEndpoint.add(REG, "s1", "reactions", "https://b.example/h", "v1:sealed", ["message_reaction"])
    )
    first = inbound("s1", "m1", "hello")
    committer.save(first)
    committer.save(inbound("s2", "m2", "/start now"))
    first.react("628@s.whatsapp.net", "👍", datetime.now(UTC))
    committer.save(first)


def test_fan_out_filters_sequences_and_follow_ups(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    scenario(committer)
    runner = outbox(store, database_url, schema, default=DefaultEndpoint("https://default.example/h"))
    runner.catch_up()
    runner.stop()
    events = rows(database_url, schema, "SELECT session, seq, event, body FROM wh_events ORDER BY position")
    by_session: dict[str, list[tuple[int, str]]] = {}
    for session, seq, event, _ in events:
        by_session.setdefault(session, []).append((seq, event))
    assert [e for _, e in by_session["s1"]] == [
        "session_status",
        "message_received",
        "message_received",
        "message_reaction",
    ]
    assert [s for s, _ in by_session["s1"]] == [1, 2, 3, 4]  # per session, from 1, no gap
    assert by_session["s2"] == [(1, "session_status"), (2, "message_command")]
    reaction = json.loads(next(b for s, _, e, b in events if e == "message_reaction"))
    assert reaction["data"]["key"]["id"] == "m1" and reaction["data"]["reaction"]["text"] == "👍"
    assert reaction["session"] == {"id": "s1", "label": "s1", "registry": REG, "username": "shop"}
    deliveries = rows(
        database_url,
        schema,
        "SELECT w.name, d.event FROM wh_deliveries d LEFT JOIN wh_endpoints w ON w.id = d.endpoint_id"
        " WHERE d.session_id = (SELECT session_id FROM wh_events WHERE session = 's1' LIMIT 1)"
        " ORDER BY d.queue_id",
    )
    # "all" exists from m1 on: m0 and the create event went to the default endpoint (s1 had none then)
    assert deliveries == [
        (None, "session_status"),
        (None, "message_received"),
        ("all", "message_received"),
        ("all", "message_reaction"),
        ("reactions", "message_reaction"),
    ]
    default = rows(
        database_url,
        schema,
        f"SELECT count(*) FROM wh_deliveries WHERE endpoint_id = '{DEFAULT_WEBHOOK_ENDPOINT}'",
    )
    assert default == [(4,)]  # s1's two before its endpoints, s2's two


def test_each_event_is_enqueued_once_with_concurrent_runners(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    committer.save(Session.create(REG, "s1", None, True, "sandbox"))
    committer.save(WebhookEndpoint.add(REG, "s1", "all", "https://a.example/h", "v1:sealed"))
    futures = [committer.submit(inbound("s1", f"m{i}", f"t{i}").collect_events()) for i in range(400)]
    for future in futures:
        future.result(timeout=30)
    runners = [outbox(store, database_url, schema, batch_size=37) for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for runner in runners:
        runner.stop()
    counts = rows(database_url, schema, "SELECT count(*), count(DISTINCT position), max(seq) FROM wh_events")
    assert counts == [(401, 401, 401)]  # session_status(create) + 400 messages, each once
    assert rows(database_url, schema, "SELECT count(*), count(DISTINCT delivery_id) FROM wh_deliveries") == [
        (400, 400)
    ]


def test_pipelined_catch_up_writes_what_page_by_page_does(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """A backlog bigger than a page goes through the pipelined catch-up (the page in flight
    is the previous page of the next fold): same sequences and deliveries as one by one."""
    committer.save(Session.create(REG, "s1", None, True, "sandbox"))
    committer.save(WebhookEndpoint.add(REG, "s1", "all", "https://a.example/h", "v1:sealed"))
    messages = [inbound("s1", f"m{i}", f"t{i}") for i in range(300)]
    for future in [committer.submit(m.collect_events()) for m in messages]:
        future.result(timeout=30)
    for m in messages[::7]:
        m.react("628@s.whatsapp.net", "🔥", datetime.now(UTC))
        committer.save(m)
    runner = outbox(store, database_url, schema, batch_size=50)
    runner.catch_up()
    runner.stop()
    seqs = rows(database_url, schema, "SELECT seq FROM wh_events ORDER BY position")
    assert [s for (s,) in seqs] == list(range(1, len(seqs) + 1))
    reactions = rows(
        database_url, schema, "SELECT count(*) FROM wh_deliveries WHERE event = 'message_reaction'"
    )
    assert reactions == [(len(messages[::7]),)]


def test_the_directory_is_read_once_while_the_runner_follows_the_log(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """Live batches reuse the outbox's directory; it is read again only when the tracked
    position moved without this runner (another process)."""
    loads: list[int] = []

    class Counting(OutboxProjection):
        def _load(self, cur: Any) -> Any:
            loads.append(1)
            return super()._load(cur)

    committer.save(Session.create(REG, "s1", None, True, "sandbox"))
    committer.save(WebhookEndpoint.add(REG, "s1", "all", "https://a.example/h", "v1:sealed"))
    runner = ProjectionRunner(store, Counting(store.events_table), database_url, schema)
    for i in range(5):
        committer.save(inbound("s1", f"m{i}", "hi"))
        runner.catch_up()
    assert len(loads) == 1
    other = outbox(store, database_url, schema)  # another process takes the next event
    committer.save(inbound("s1", "m9", "hi"))
    other.catch_up()
    other.stop()
    committer.save(inbound("s1", "m10", "hi"))
    runner.catch_up()
    runner.stop()
    assert len(loads) == 2  # the position had moved: read again, so sequences stay right
    seqs = rows(database_url, schema, "SELECT seq FROM wh_events ORDER BY position")
    assert [s for (s,) in seqs] == list(range(1, len(seqs) + 1))
