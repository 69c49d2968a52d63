"""Generated event logs: the read models a server builds incrementally (small batches, as
commands come) are exactly those a rebuild builds from scratch, through the pipelined
catch-up (forced with a page of a few events) into shadow tables swapped in.

The logs are sequences of domain commands on the real aggregates (``tests/fixtures/
domain_log.py``: session lifecycle with bans and suspensions, messages queued, sent, failed,
received, with receipts, reactions, edits, revokes, stars, pins; chats pinned, archived,
muted, cleared, read; webhook endpoints added, changed, disabled, removed; users), saved
to the real event store. Hypothesis draws them, derandomized: the same examples every run.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.domain_log import COMMANDS, World
from tests.integration.rebuild_support import dump, parked, pipelined_calls, reset, runners, save_and_follow
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp

REBUILD_PAGE = 3
"""Events per page of the rebuild: far fewer than any log here, so it pipelines."""

steps = st.lists(
    st.tuples(st.integers(0, len(COMMANDS) - 1), st.integers(0, 2**16 - 1)), min_size=1, max_size=60
)


@settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_incremental_and_rebuilt_read_models_are_identical(
    store: EventStoreApp,
    committer: GroupCommitter,
    database_url: str,
    schema: str,
    steps: list[tuple[int, int]],
) -> None:
    reset(database_url, schema, store.events_table)
    world = World()
    saves = [(save, True) for save in world.setup()]
    saves += [(world.step(kind, choice), choice % 3 != 0) for kind, choice in steps]
    live = runners(store, database_url, schema)
    try:
        save_and_follow(committer, live, saves)
        incremental = dump(database_url, schema)
        assert parked(database_url, schema) == []  # every event applied, none set aside
        with pipelined_calls() as pipelined:
            for runner in runners(store, database_url, schema, batch_size=REBUILD_PAGE):
                runner.rebuild()
                runner.stop()
        assert "streams" in pipelined  # the setup alone is more than a page of its events
        assert parked(database_url, schema) == []
        rebuilt = dump(database_url, schema)
        for table, rows in incremental.items():
            assert rebuilt[table] == rows, table
        # The server's runners go on from where the rebuild left the read models.
        for runner in live:
            assert runner.follow() == 0
    finally:
        for runner in live:
            runner.stop()
