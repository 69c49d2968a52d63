"""The checked-in reference log (every event type) rebuilt into a fresh schema, through the
pipelined catch-up: each read-model table's checksum is pinned, so a change in what a
projection makes of the log fails here, by table."""

from __future__ import annotations

import json

from projections import ALL
from tests.fixtures.domain_log import COMMANDS
from tests.fixtures.make_reference_log import CHECKSUMS, LOG, rebuilt_checksums
from tests.integration.rebuild_support import TABLES, pipelined_calls
from warest.domain.catalog import EVENT_CLASSES
from warest.infra.eventstore.store import EventStoreApp

REGENERATE = (
    "if the change is intended, write the checksums again with"
    " `.venv/bin/python -m tests.fixtures.make_reference_log checksums` and review the diff"
)


def test_the_reference_log_holds_every_event_type() -> None:
    with LOG.open(encoding="utf-8") as lines:
        topics = {json.loads(line)["topic"].partition(":")[2] for line in lines}
    missing = {cls.__qualname__ for cls in EVENT_CLASSES} - topics
    assert not missing, f"event types not in {LOG.name}: {sorted(missing)}; write it again with" \
        " `.venv/bin/python -m tests.fixtures.make_reference_log log checksums`"  # fmt: skip
    assert COMMANDS  # the generator it was made with is still there


def test_every_read_model_of_the_reference_log_is_pinned(
    store: EventStoreApp, database_url: str, schema: str
) -> None:
    pinned = json.loads(CHECKSUMS.read_text(encoding="utf-8"))
    assert set(pinned) == set(TABLES), f"the pinned tables are not the read models' tables; {REGENERATE}"
    with pipelined_calls() as pipelined:
        built = rebuilt_checksums(database_url, schema)
    assert set(pipelined) == {p.name for p in ALL if hasattr(p, "fold")}  # every paged read model
    changed = sorted(table for table in TABLES if built[table] != pinned[table])
    assert not changed, f"the rebuilt reference log differs in {', '.join(changed)}; {REGENERATE}"
