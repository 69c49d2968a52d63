"""The event store on PostgreSQL: ordering under concurrency, group commit, conflicts."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from eventsourcing.persistence import IntegrityError

from tests.integration.tailing import follow
from warest.domain.sessions import Session
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp, postgres_env


def new_session(i: int) -> Session:
    return Session.create("REG", f"s-{i}-{uuid.uuid4().hex[:6]}", None, True, "sandbox")


def test_store_runs_in_lock_mode_whatever_the_env_says(database_url: str, schema: str) -> None:
    for key in ("POSTGRES_ENABLE_DB_FUNCTIONS", "WAREST_POSTGRES_ENABLE_DB_FUNCTIONS"):
        app = EventStoreApp(env=postgres_env(database_url, schema, 2) | {key: "yes"})
        try:
            assert app.recorder.datastore.enable_db_functions is False  # type: ignore[attr-defined]
        finally:
            app.close()


def test_tailing_reader_misses_nothing_under_eight_concurrent_writers(store: EventStoreApp) -> None:
    """8 writer threads commit 3-event transactions while a reader follows the log."""
    writers, transactions, per_txn = 8, 150, 3
    expected = writers * transactions * per_txn
    seen: list[int] = []
    done = threading.Event()

    def write(worker: int) -> None:
        for t in range(transactions):
            session = new_session(worker * 1000 + t)
            session.configure(label="a")
            session.configure(label="b")
            store.save(session)

    reader = threading.Thread(target=follow, args=(store, seen, done))
    reader.start()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    done.set()
    reader.join(timeout=130)
    all_ids = [n.id for n in store.select(0, expected + 10)]
    assert len(all_ids) == expected
    assert seen == all_ids  # same ids, same order: nothing skipped, nothing repeated


def test_group_commit_gathers_concurrent_saves_into_few_transactions(
    store: EventStoreApp, committer: GroupCommitter
) -> None:
    sessions = [new_session(i) for i in range(200)]
    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(committer.save, s) for s in sessions]
        recordings = [f.result() for f in futures]
    assert all(len(r) == 1 for r in recordings)
    positions = sorted(r[0].notification.id for r in recordings)
    assert len(set(positions)) == 200
    assert committer.saved_events == 200
    assert committer.batches < 200  # several saves shared a transaction
    for session in sessions:
        assert store.repository.get(session.id).name == session.name


def test_conflict_in_a_batch_fails_only_the_conflicting_submission(
    store: EventStoreApp, committer: GroupCommitter
) -> None:
    session = new_session(1)
    committer.save(session)
    stale_a = store.repository.get(session.id)
    stale_b = store.repository.get(session.id)
    stale_a.configure(label="from a")
    stale_b.configure(label="from b")
    others = [new_session(i) for i in range(10, 20)]
    futures = [committer.submit(stale_a.collect_events()), committer.submit(stale_b.collect_events())]
    futures += [committer.submit(s.collect_events()) for s in others]
    outcomes = []
    for future in futures:
        try:
            future.result(timeout=10)
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("conflict")
    assert outcomes.count("conflict") == 1
    assert outcomes[2:] == ["ok"] * 10  # unrelated saves went through
    assert store.repository.get(session.id).label in {"from a", "from b"}
    for s in others:
        assert store.repository.get(s.id).version == 1


def test_group_commit_off_writes_one_by_one(store: EventStoreApp) -> None:
    gc = GroupCommitter(store, enabled=False)
    gc.start()
    try:
        for i in range(5):
            gc.save(new_session(i))
        assert gc.batches == 5
    finally:
        gc.stop()


def test_duplicate_creation_collides_on_version_one(store: EventStoreApp, committer: GroupCommitter) -> None:
    first = Session.create("REG", "dup", None, True, "sandbox")
    second = Session.create("REG", "dup", None, True, "sandbox")
    assert first.id == second.id  # deterministic ids
    committer.save(first)
    with pytest.raises(IntegrityError):
        committer.save(second)
    assert len(store.select(0, 10)) == 1


def test_a_caller_that_gives_up_does_not_stop_the_writer(
    store: EventStoreApp, committer: GroupCommitter
) -> None:
    abandoned = committer.submit(new_session(1).collect_events())
    abandoned.cancel()
    recordings = committer.submit(new_session(2).collect_events()).result(timeout=10)
    assert len(recordings) == 1  # the writer thread is still alive
    assert store.max_position() >= 1
