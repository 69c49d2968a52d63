"""The projector process: real ``warest projector`` processes, followed through ``RemoteReadModels``.

What a server relies on when its read models are kept by another process: every batch is
announced (waits end when the rows are there), one projector works at a time (lease), a
second takes over when the first dies, and ``healthy`` says whether one is working.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from tests.conftest import make_settings
from warest.bootstrap import build_runners, server_read_model_names
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role
from warest.domain.webhooks import WebhookEndpoint
from warest.infra import projection_runner
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp
from warest.infra.projector import projector_channel, projector_lock_key
from warest.infra.readmodels import RemoteReadModels


def projector_env(database_url: str, schema: str, data_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "WAREST_DATABASE_URL": database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "WAREST_DATA_DIR": str(data_dir),
        "LOG_LEVEL": "warning",
    }


@pytest.fixture
def start_projector(
    database_url: str, schema: str, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "warest", "projector"], env=projector_env(database_url, schema, tmp_path)
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.fixture
def follower(
    database_url: str, schema: str, tmp_path: Path, store: EventStoreApp
) -> Iterator[Callable[..., RemoteReadModels]]:
    """``follower(refresh_s=1.0)``: what a server worker uses to follow the projector of
    ``schema`` (the test starts it; it is stopped at the end)."""
    made: list[RemoteReadModels] = []

    def make(refresh_s: float = 1.0) -> RemoteReadModels:
        names = server_read_model_names(make_settings(database_url, schema, tmp_path))
        assert "registry" in names and "webhook_outbox" in names
        channel, lock_key = projector_channel(schema), projector_lock_key(schema)
        made.append(
            RemoteReadModels(
                names, store.max_position, database_url, schema, channel, lock_key, refresh_s=refresh_s
            )
        )
        return made[-1]

    yield make
    for read_models in made:
        read_models.stop()


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def sessions_in(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return {row[0] for row in conn.execute("SELECT session_id FROM rm_sessions").fetchall()}


def lease_holders(database_url: str, schema: str) -> int:
    key = projector_lock_key(schema)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_projector_process_keeps_the_read_models_and_announces_every_batch(
    database_url: str,
    schema: str,
    store: EventStoreApp,
    committer: GroupCommitter,
    start_projector: Callable[[], subprocess.Popen[bytes]],
    follower: Callable[..., RemoteReadModels],
) -> None:
    read_models = follower()
    moves: list[int] = []
    read_models.follow("registry", moves.append)
    await asyncio.to_thread(read_models.start, asyncio.get_running_loop())
    assert not read_models.healthy()  # nobody holds the projector's lease yet
    first = start_projector()
    committer.save(Session.create("REG", "one", None, True, "sandbox"))
    position = store.max_position()
    assert await read_models.wait(position, timeout=30)
    assert "one" in sessions_in(database_url, schema)  # the wait ends when the rows are there
    assert moves and moves[-1] >= position
    assert until(read_models.healthy)

    # A second projector stands by while the first holds the lease.
    second = start_projector()
    await asyncio.sleep(1.5)
    assert second.poll() is None and lease_holders(database_url, schema) == 1

    # The first dies without a word: the second takes over and catches up.
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    committer.save(Session.create("REG", "two", None, True, "sandbox"))
    position = store.max_position()
    assert await read_models.wait(position, timeout=30)
    assert {"one", "two"} <= sessions_in(database_url, schema)
    assert read_models.position >= position

    # SIGTERM stops it cleanly; with nobody projecting, the server's health says so.
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    assert until(lambda: not read_models.healthy(), timeout=10)
    committer.save(Session.create("REG", "three", None, True, "sandbox"))
    position = store.max_position()
    assert not await read_models.wait(position, timeout=1.5)
    assert "three" not in sessions_in(database_url, schema)


def test_a_busy_runner_takes_a_stream_of_events_in_few_batches(
    database_url: str,
    schema: str,
    tmp_path: Path,
    store: EventStoreApp,
    committer: GroupCommitter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``WAREST_PROJECTION_INTERVAL_MS``: once a runner is busy, each batch starts at least an
    interval after the previous one ended, taking together the commits made meanwhile; each
    batch is announced with its position.

    "Busy" is a rate (``BUSY_EVENTS_PER_S`` over a second), which a loaded machine may not
    reach: it is set to 0 here, so the runner is busy from its first measured second on, and
    what is asserted is the spacing the runner enforces (a lower bound that a slow machine can
    only widen), counted in batches and commits, not in what fits into a second."""
    monkeypatch.setattr(projection_runner, "BUSY_EVENTS_PER_S", 0)
    interval = 0.25
    settings = make_settings(database_url, schema, tmp_path, WAREST_PROJECTION_INTERVAL_MS="250")
    channel = projector_channel(schema)
    runner = next(
        r for r in build_runners(store, settings, database_url, announce=channel) if r.name == "registry"
    )
    seen: list[tuple[float, int]] = []  # (when, position) of every batch, empty ones too
    runner.on_advance = lambda position, _news: seen.append((time.monotonic(), position))

    def advancing() -> list[tuple[float, int]]:
        """The batches that moved the position (an empty batch neither waits nor counts)."""
        out: list[tuple[float, int]] = []
        for when, position in list(seen):
            if position > (out[-1][1] if out else start):
                out.append((when, position))
        return out

    def spaced() -> list[tuple[float, int]]:
        """Advancing batches after one that ended a second or more after the runner's first
        batch: by then the runner has measured its load once, and is busy."""
        batches = advancing()
        return [b for a, b in itertools.pairwise(batches) if a[0] >= seen[0][0] + 1.0]

    start = store.max_position()
    commits = 0
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        runner.start()
        try:
            begun = time.monotonic()
            while len(spaced()) < 4:  # a stream that lasts until four batches were spaced
                assert time.monotonic() - begun < 120, "the runner did not get busy"
                committer.save(
                    *(Session.create("REG", f"s{commits}-{i}", None, True, "sandbox") for i in range(20))
                )
                commits += 1
                runner.nudge()
                # Paced (50 commits a second at most), not as fast as possible: a runner
                # starved of the GIL by this thread would batch by itself and prove nothing.
                time.sleep(max(0.0, begun + commits / 50 - time.monotonic()))
            last = store.max_position()
            assert runner.wait(last, timeout=30)
            payloads = [n.payload for n in listener.notifies(timeout=0.5)]
        finally:
            runner.stop()
    assert len(sessions_in(database_url, schema)) == commits * 20
    batches = advancing()
    assert payloads == [f"registry:{position}" for _, position in batches]  # each one announced
    assert batches[-1][1] == last
    # Every busy batch started at least the interval after the previous one ended (1 ms of
    # timer rounding allowed), taking together the commits made meanwhile; no batch is
    # empty of commits.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(batches) if a[0] >= seen[0][0] + 1.0]
    assert len(gaps) >= 4 and min(gaps) >= interval - 0.001, [round(g, 3) for g in gaps]
    assert len(batches) <= commits


async def test_a_failing_projection_in_the_projector_shows_in_health_until_it_recovers(
    database_url: str,
    schema: str,
    store: EventStoreApp,
    committer: GroupCommitter,
    start_projector: Callable[[], subprocess.Popen[bytes]],
    follower: Callable[..., RemoteReadModels],
) -> None:
    """A projector whose batches keep failing still holds its lease: the server must not
    call its read models healthy, and must again once the batches go through."""
    read_models = follower(refresh_s=0.2)
    await asyncio.to_thread(read_models.start, asyncio.get_running_loop())
    start_projector()
    committer.save(Session.create("REG", "one", None, True, "sandbox"))
    assert await read_models.wait(store.max_position(), timeout=30)
    assert until(read_models.healthy)

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("ALTER TABLE rm_sessions RENAME TO rm_sessions_away")
        committer.save(Session.create("REG", "two", None, True, "sandbox"))
        assert until(lambda: not read_models.healthy(), timeout=10)
        assert lease_holders(database_url, schema) == 1  # the lease alone said healthy
        assert "rm_sessions" in read_models.failing["registry"]
        assert set(read_models.failing) == {"registry"}

        conn.execute("ALTER TABLE rm_sessions_away RENAME TO rm_sessions")
    assert until(read_models.healthy, timeout=20)
    assert read_models.failing == {}
    assert "two" in sessions_in(database_url, schema)


async def test_followers_of_the_outbox_are_woken_only_by_new_deliveries(
    store: EventStoreApp,
    committer: GroupCommitter,
    start_projector: Callable[[], subprocess.Popen[bytes]],
    follower: Callable[..., RemoteReadModels],
) -> None:
    """The server's dispatcher follows the outbox: a batch that queued no delivery (no
    endpoint wants its events) moves the position and ends waits, and wakes nobody."""
    read_models = follower()
    woken: list[int] = []
    read_models.follow("webhook_outbox", woken.append)
    await asyncio.to_thread(read_models.start, asyncio.get_running_loop())
    start_projector()
    committer.save(User.register(uuid4(), "shop", "REG", Role.USER, password_hash=None, api_key_digest=None))
    committer.save(Session.create("REG", "one", None, True, "sandbox"))  # no endpoint yet
    quiet = store.max_position()
    assert await read_models.wait(quiet, timeout=30)
    await asyncio.sleep(0.2)  # callbacks are scheduled on this loop
    assert woken == []

    committer.save(WebhookEndpoint.add("REG", "one", "all", "https://a.example/h", "v1:sealed"))
    committer.save(
        Message.receive(
            "REG",
            "one",
            "m1",
            chat="6281234567@s.whatsapp.net",
            sender="6281234567@s.whatsapp.net",
            text="hi",
        )
    )
    news = store.max_position()
    assert await read_models.wait(news, timeout=30)
    await asyncio.sleep(0.2)
    assert woken and woken[-1] == news and all(position > quiet for position in woken)
