"""Projections are total: engine text is made safe where it is written, and an event a
projection cannot apply is parked (recorded, skipped, retried after a fix), never retried
for ever in a loop that stops the read model for every tenant."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import msgspec
import psycopg
import pytest

from projections import ALL, ChatsProjection, ContactsProjection, MessagesProjection, RegistryProjection
from projections._page import Writes
from projections.outbox import OutboxProjection
from tests.integration.test_projector import follower, start_projector, until  # noqa: F401 (fixtures)
from warest.app.sandbox import InboxItem, SandboxAccount
from warest.app.webhook_dispatch import Health, Outcome
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.webhooks import WebhookEndpoint
from warest.infra.db.migrations import migrate
from warest.infra.engines.sandbox.store import SandboxStore
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projection_runner import ProjectionRunner
from warest.infra.projector import projector_channel, projector_lock_key
from warest.infra.readmodels import RemoteReadModels
from warest.infra.webhooks.secrets import AesSecretBox
from warest.infra.webhooks.store import PgDeliveryStore

PEER = "6281111111@s.whatsapp.net"
OTHER = "6282222222@s.whatsapp.net"


def rows_of(database_url: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return conn.execute(query, params or None).fetchall()


def bent(aggregate: Any, **changes: Any) -> list[Any]:
    """The aggregate's pending events with ``changes`` made to its first one, past every
    validation: what an older version, a raw engine or a bug may have left in the log."""
    events = aggregate.collect_events()
    return [msgspec.structs.replace(events[0], **changes), *events[1:]]


def received(registry: str, wa_id: str, sender: str = PEER, text: str = "hello", **fields: Any) -> Message:
    return Message.receive(registry, "s1", wa_id, chat=sender, sender=sender, text=text, **fields)


@pytest.fixture
def runners(store: EventStoreApp, database_url: str, schema: str) -> Iterator[list[ProjectionRunner]]:
    made = [ProjectionRunner(store, cls(), database_url, schema) for cls in ALL]
    made.append(ProjectionRunner(store, OutboxProjection(store.events_table), database_url, schema))
    yield made
    for runner in made:
        runner.stop()


def parked(database_url: str, schema: str, name: str | None = None) -> list[tuple[Any, ...]]:
    return rows_of(
        database_url,
        schema,
        "SELECT name, position, topic, error FROM projection_parked"
        " WHERE %s::text IS NULL OR name = %s ORDER BY name, position",
        name,
        name,
    )


def test_engine_text_with_nul_is_projected_with_replacement_characters(
    store: EventStoreApp,
    committer: GroupCommitter,
    runners: list[ProjectionRunner],
    database_url: str,
    schema: str,
) -> None:
    """NUL in texts, push names, reasons and descriptions reaches the log (older versions,
    engines, raw appends): every read model takes it with U+FFFD, parks nothing, and the
    next tenant's events are projected."""
    session = Session.create("REGA", "s1", None, True, "sandbox")
    committer.submit(session.collect_events()).result(10)
    session.opened("62899@s.whatsapp.net", None, "me")
    committer.submit(bent(session, push_name="Me\x00")).result(10)
    committer.submit(bent(received("REGA", "w1"), text="a\x00b", push_name="P\x00")).result(10)
    queued = Message.queue("REGA", "s1", PEER, "w2", "ok", [], None, None)
    committer.submit(bent(queued, text="q\x00")).result(10)
    endpoint = WebhookEndpoint.add("REGA", "s1", "hook", "https://hooks.example/a", "sealed", None, "fine")
    committer.submit(bent(endpoint, description="d\x00")).result(10)
    committer.save(received("REGB", "w3", OTHER, "from b"))  # another tenant, after the poison
    for runner in runners:
        runner.catch_up()
        assert runner.position == store.max_position(), runner.name
    assert parked(database_url, schema) == []
    messages = dict(rows_of(database_url, schema, "SELECT wa_id, text FROM rm_messages"))
    assert messages == {"w1": "a\ufffdb", "w2": "q\ufffd", "w3": "from b"}
    assert rows_of(database_url, schema, "SELECT push_name FROM rm_messages WHERE wa_id = 'w1'") == [
        ("P\ufffd",)
    ]
    chats = rows_of(database_url, schema, "SELECT registry, name, last_message_text FROM rm_chats ORDER BY 1")
    assert chats == [("REGA", "P\ufffd", "q\ufffd"), ("REGB", None, "from b")]
    contacts = rows_of(database_url, schema, "SELECT registry, push_name FROM rm_contacts ORDER BY 1")
    assert contacts == [("REGA", "P\ufffd"), ("REGB", None)]
    assert rows_of(database_url, schema, "SELECT text FROM rm_pending_outbound") == [("q\ufffd",)]
    assert rows_of(database_url, schema, "SELECT push_name FROM rm_sessions") == [("Me\ufffd",)]
    assert rows_of(database_url, schema, "SELECT description FROM wh_endpoints") == [("d\ufffd",)]
    bodies = [json.loads(b) for (b,) in rows_of(database_url, schema, "SELECT body FROM wh_events")]
    received_body = next(body for body in bodies if body["event"] == "message_received")
    assert received_body["data"]["text"] == "a\ufffdb"
    assert received_body["data"]["message"]["pushName"] == "P\ufffd"
    assert b"\\u0000" not in b"".join(
        bytes(b) for (b,) in rows_of(database_url, schema, "SELECT body FROM wh_events")
    )


def test_the_page_writer_makes_lone_surrogates_and_nul_safe(
    store: EventStoreApp, database_url: str, schema: str
) -> None:
    """Rows that never came from the log (a lone surrogate cannot be encoded into it) are made
    safe by the writer itself, through COPY, arrays and staging tables alike."""
    columns = {"id": "integer", "t": "text", "a": "text[]"}
    few = [(1, "x\ud800y", ["m\x00"]), (2, None, []), (3, "é🎉", ["ü", None])]
    many = [(i, f"n\x00{i}\udfff", [f"\x00{i}"]) for i in range(10, 110)]
    with psycopg.connect(database_url) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute("CREATE TABLE w (id integer PRIMARY KEY, t text, a text[])")
        with conn.cursor() as cur:
            out = Writes(cur)
            out.insert("w", columns, few)
            out.upsert("w", "w_up", columns, many, "ON CONFLICT (id) DO UPDATE SET t = EXCLUDED.t")
            out.run()
            deferred = Writes(cur, deferred=True)
            deferred.update("w", "w_set", {"id": "integer"}, {"t": "text"}, [(2, "z\x00")])
            deferred.run()
        rows = dict(conn.execute("SELECT id, t FROM w").fetchall())
    assert rows[1] == "x\ufffdy" and rows[2] == "z\ufffd" and rows[10] == "n\ufffd10\ufffd"
    assert rows_of(database_url, schema, "SELECT a FROM w WHERE id = 1") == [(["m\ufffd"],)]
    assert rows[3] == "é🎉"  # other text is left as it is
    assert rows_of(database_url, schema, "SELECT a FROM w WHERE id = 3") == [(["ü", None],)]


class Allergic(MessagesProjection):
    """The messages read model with a bug: it cannot take messages whose text is ``allergen``."""

    allergen = "poison"

    def fold(self, page: Any, cur: Any, previous: object = None) -> Any:
        for event, _ in page:
            if isinstance(event, Message.Received | Message.Queued) and event.text == self.allergen:
                raise ValueError(f"cannot take {event.wa_id}")
        return super().fold(page, cur, previous)


class StagingAllergic(MessagesProjection):
    """The messages read model with a bug in writing: a page with ``allergen`` cannot be
    written (the pipelined catch-up stages the rows before it sends the statements)."""

    allergen = "poison"

    def fold(self, page: Any, cur: Any, previous: object = None) -> Any:
        folded = super().fold(page, cur, previous)
        if any(isinstance(e, Message.Received) and e.text == self.allergen for e, _ in page):
            store = folded.store

            def failing(out: Any) -> None:
                store(out)
                raise RuntimeError(f"cannot take a page of {len(page)}")

            folded.store = failing  # type: ignore[method-assign]
        return folded


def messages_of(database_url: str, schema: str) -> set[str]:
    return {row[0] for row in rows_of(database_url, schema, "SELECT wa_id FROM rm_messages")}


@pytest.mark.parametrize("failing", ["fold", "write"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["page-by-page", "pipelined"])
def test_an_event_a_projection_cannot_apply_is_parked_and_retried_after_a_fix(
    store: EventStoreApp,
    committer: GroupCommitter,
    database_url: str,
    schema: str,
    pipelined: bool,
    failing: str,
) -> None:
    for i in range(40):
        text = "poison" if i in (17, 33) else f"t{i}"  # pipelined: pages 1 and 2 go through first
        committer.save(received("REGA" if i % 2 else "REGB", f"w{i}", text=text))
    projection = (StagingAllergic if failing == "write" else Allergic)()
    runner = ProjectionRunner(store, projection, database_url, schema, batch_size=8 if pipelined else 20_000)
    try:
        runner.catch_up()
        assert runner.position == store.max_position()
        assert messages_of(database_url, schema) == {f"w{i}" for i in range(40)} - {"w17", "w33"}
        rows = parked(database_url, schema, "messages")
        assert [(r[0], r[2]) for r in rows] == [("messages", "warest.domain.messages:Message.Received")] * 2
        assert all("cannot take" in r[3] for r in rows), rows
        assert runner.parked == 2
        committer.save(received("REGA", "w40", text="after"))  # later events still flow
        runner.catch_up()
        assert "w40" in messages_of(database_url, schema)
        assert runner.retry_parked().applied == 0  # not fixed yet: still parked
        assert len(parked(database_url, schema, "messages")) == 2
        runner.projection.allergen = "fixed"  # type: ignore[attr-defined]
        outcome = runner.retry_parked()
        assert (outcome.applied, outcome.failed) == (2, 0)
        assert parked(database_url, schema) == [] and runner.parked == 0
        assert messages_of(database_url, schema) == {f"w{i}" for i in range(41)}
    finally:
        runner.stop()


def test_a_running_runner_parks_and_follows_the_log(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """The background loop meets the bad event, parks it and goes on with the next ones; a
    wait for a later position ends."""
    runner = ProjectionRunner(store, Allergic(), database_url, schema, poll_interval_s=0.05)
    runner.start()
    try:
        committer.save(received("REGA", "bad", text="poison"))
        committer.save(received("REGB", "good", text="fine"))
        runner.nudge()
        assert runner.wait(store.max_position(), timeout=30)
        assert messages_of(database_url, schema) == {"good"}
        assert [r[1] for r in parked(database_url, schema)] == [store.max_position() - 1]
        assert runner.error is None
    finally:
        runner.stop()


def test_every_read_model_parks_instead_of_stopping(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """Projections of either kind (per-event ``process``: the registry; folded pages) park."""
    committer.save(Session.create("REGA", "bad", None, True, "sandbox"))
    committer.save(Session.create("REGB", "good", None, True, "sandbox"))
    runner = ProjectionRunner(store, Picky(), database_url, schema)
    try:
        runner.catch_up()
        assert rows_of(database_url, schema, "SELECT session_id FROM rm_sessions") == [("good",)]
        assert [r[0] for r in parked(database_url, schema)] == ["registry"]
        runner.projection.refuse = "fixed"  # type: ignore[attr-defined]
        assert runner.retry_parked() == (1, 0)
        sessions = {r[0] for r in rows_of(database_url, schema, "SELECT session_id FROM rm_sessions")}
        assert sessions == {"bad", "good"}
    finally:
        runner.stop()


class Picky(RegistryProjection):
    """The registry read model with a bug for sessions named ``refuse``."""

    refuse = "bad"

    def process(self, event: Any, cur: Any, position: int) -> None:
        if isinstance(event, Session.Created) and event.name == self.refuse:
            raise KeyError(event.name)
        super().process(event, cur, position)


class AllergicChats(ChatsProjection):
    allergen = "poison"

    def fold(self, page: Any, cur: Any, previous: object = None) -> Any:
        for event, _ in page:
            if isinstance(event, Message.Received) and event.text == self.allergen:
                raise ValueError(f"cannot take {event.wa_id}")
        return super().fold(page, cur, previous)


def test_a_retry_from_elsewhere_invalidates_what_a_runner_carries(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """A retry run by another process changes rows a following runner holds from its last
    page: the runner reads them again instead of writing its stale copy back."""
    committer.save(received("REGA", "m1", text="poison"))
    runner = ProjectionRunner(store, AllergicChats(), database_url, schema)
    fixer = ProjectionRunner(store, AllergicChats(), database_url, schema)
    try:
        runner.follow()  # parks m1
        committer.save(received("REGA", "m2", text="ok"))
        runner.follow()  # applies m2, keeps the page's rows for the next one
        unread = "SELECT unread_count FROM rm_chats"
        assert rows_of(database_url, schema, unread) == [(1,)]
        fixer.projection.allergen = "fixed"  # type: ignore[attr-defined]
        assert fixer.retry_parked().applied == 1
        assert rows_of(database_url, schema, unread) == [(2,)]
        committer.save(received("REGA", "m3", text="later"))
        runner.follow()
        assert rows_of(database_url, schema, unread) == [(3,)]
    finally:
        runner.stop()
        fixer.stop()


def test_contacts_and_chats_take_nul_in_push_names_of_other_pages(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    for i in range(3):
        committer.submit(bent(received("REGA", f"p{i}"), push_name=f"N\x00{i}")).result(10)
    for cls in (ContactsProjection, ChatsProjection):
        runner = ProjectionRunner(store, cls(), database_url, schema, batch_size=1)
        try:
            runner.catch_up()
            assert runner.position == store.max_position()
        finally:
            runner.stop()
    assert rows_of(database_url, schema, "SELECT push_name FROM rm_contacts") == [("N\ufffd2",)]
    assert parked(database_url, schema) == []


def test_followers_of_a_projector_see_parked_counts_and_stay_healthy(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str
) -> None:
    """A server following a projector reads the parked counts with the tracking rows: they
    do not make the read models unhealthy, and waits past the parked event end."""
    committer.save(Session.create("REGA", "bad", None, True, "sandbox"))
    runner = ProjectionRunner(store, Picky(), database_url, schema)
    remote = RemoteReadModels(
        ["registry"],
        store.max_position,
        database_url,
        schema,
        projector_channel(schema),
        projector_lock_key(schema),
    )
    try:
        runner.catch_up()
        remote.start()
        assert remote.parked() == {"registry": 1}
        assert remote.failing == {}
        assert remote.position == store.max_position()
    finally:
        remote.stop()
        runner.stop()


def test_the_command_line_retries_parked_events(
    store: EventStoreApp, committer: GroupCommitter, database_url: str, schema: str, tmp_path: Any
) -> None:
    committer.save(Session.create("REGA", "bad", None, True, "sandbox"))
    runner = ProjectionRunner(store, Picky(), database_url, schema)
    try:
        runner.catch_up()
    finally:
        runner.stop()
    assert len(parked(database_url, schema)) == 1
    env = {
        "WAREST_DATABASE_URL": database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "WAREST_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "warest.cli", "projections", "retry-parked"]
    result = subprocess.run(
        [*command, "registry"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "registry: 1 applied, 0 still parked"
    assert parked(database_url, schema) == []
    assert rows_of(database_url, schema, "SELECT session_id FROM rm_sessions") == [("bad",)]
    refused = subprocess.run(
        [*command, "nope"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode != 0 and "unknown projection" in refused.stderr


async def test_the_sandbox_stores_engine_text_made_safe(database_url: str, schema: str) -> None:
    """An inbox flush stores every account's messages together: one bad byte must not fail it."""
    migrate(database_url, schema)
    pool = await asyncpg.create_pool(
        database_url, server_settings={"search_path": schema}, min_size=1, max_size=2
    )
    try:
        store = SandboxStore(pool)
        assert await store.add_account(
            SandboxAccount(
                phone="62811", lid="1@lid", push_name="P\x00", about="a\ud800", business={"k\x00": "v\x00"}
            )
        )
        at = datetime.now(UTC)
        await store.record_inbox(
            [
                ("62811", InboxItem("w1", "s\x00", "c", "t\x00\udfff", "text", at)),
                ("62822", InboxItem("w2", "s", "c", "fine", "text", at)),
            ]
        )
        assert [i.text for i in await store.inbox("62811", 10)] == ["t\ufffd\ufffd"]
        assert [i.text for i in await store.inbox("62822", 10)] == ["fine"]
        [account] = await store.accounts()
        assert (account.push_name, account.about, account.business) == (
            "P\ufffd",
            "a\ufffd",
            {"k\ufffd": "v\ufffd"},
        )
    finally:
        await pool.close()


async def test_a_projector_process_parks_an_event_it_cannot_read_and_servers_go_on(
    database_url: str,
    schema: str,
    store: EventStoreApp,
    committer: GroupCommitter,
    start_projector: Callable[[], subprocess.Popen[bytes]],  # noqa: F811 (the fixture)
    follower: Callable[..., RemoteReadModels],  # noqa: F811 (the fixture)
) -> None:
    """The projector used to retry such an event for ever (and crash-loop at start-up, so a
    server waited for it): it now parks it, every read model moves past it, and the server
    stays healthy, with the parked counts in its health."""
    committer.save(received("REGA", "before"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(
            "INSERT INTO warest_events (originator_id, originator_version, topic, state)"
            " VALUES (gen_random_uuid(), 1, %s, %s)",
            ("warest.domain.messages:Message.Received", b'{"not": "a message"'),
        )
    committer.save(received("REGB", "after"))
    read_models = follower()
    await asyncio.to_thread(read_models.start, asyncio.get_running_loop())
    start_projector()
    assert await read_models.wait(store.max_position(), timeout=60)
    assert messages_of(database_url, schema) == {"before", "after"}
    every = {"messages", "chats", "contacts", "messaging", "streams", "webhook_outbox"}
    assert until(lambda: read_models.parked() == dict.fromkeys(every, 1), timeout=10)
    assert until(read_models.healthy, timeout=10)
    rows = parked(database_url, schema, "messages")
    assert rows[0][2] == "warest.domain.messages:Message.Received" and "cannot decode" in rows[0][3]


async def test_webhook_delivery_state_stores_what_receivers_said_made_safe(
    database_url: str, schema: str
) -> None:
    """Outcomes of every endpoint are stored together: a receiver's NUL in an error or a
    reply-action report must not fail them (nor the jsonb of the report)."""
    migrate(database_url, schema)
    settings = {"search_path": schema}
    pool = await asyncpg.create_pool(database_url, server_settings=settings, min_size=1, max_size=2)
    try:
        store = PgDeliveryStore(pool, AesSecretBox(b"k" * 32))
        endpoint, session = uuid4(), uuid4()
        now = datetime.now(UTC)
        await pool.execute(
            "INSERT INTO wh_events (position, session_id, seq, event, event_id, ts, registry, session,"
            " label, body) VALUES (1, $1, 1, 'message_received', 'e1', 0, 'R', 's', 's', '{}')",
            session,
        )
        await pool.execute(
            "INSERT INTO wh_deliveries (endpoint_id, position, delivery_id, session_id, event,"
            " created_at, updated_at) VALUES ($1, 1, 'd1', $2, 'message_received', $3, $3)",
            endpoint,
            session,
            now,
        )
        await store.record([Outcome(endpoint, 1, "failed", 1, now, 500, 3, "said \x00", None)])
        await store.record_actions(endpoint, 1, [{"ok": False, "error": "no\x00pe"}])
        await store.save_health(endpoint, Health(failures=1, last_error="bad\x00"))
        row = await pool.fetchrow("SELECT last_error, actions::text FROM wh_deliveries")
        assert row is not None and row["last_error"] == "said \ufffd" and "no\ufffdpe" in row["actions"]
        assert (await store.health())[endpoint].last_error == "bad\ufffd"
    finally:
        await pool.close()
