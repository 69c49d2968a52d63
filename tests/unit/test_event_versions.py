"""Event versions are enforced, not just available.

Every stored-event fixture (``tests/fixtures/events/``: every event type at every version it
was ever stored in) decodes with the current code, through the upcasters; every current
event class has a fixture of its current version; and a change of an event's shape without a
version bump fails here, telling the developer what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from eventsourcing.persistence import MapperDeserialisationError
from eventsourcing.utils import register_topic

from tests.fixtures.event_versions import (
    ADVICE,
    check_schemas,
    current_schemas,
    fixture_files,
    fixture_version,
    name,
    read_snapshot,
    schema_of,
    schema_problems,
)
from warest.domain import model
from warest.domain.catalog import EVENT_CLASSES
from warest.infra.eventstore.mapper import decode_state, encode_event

FIXTURES = fixture_files()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_every_stored_fixture_decodes_with_the_current_code(path: Path) -> None:
    fixture: dict[str, Any] = json.loads(path.read_text())
    event = decode_state(fixture["topic"], msgspec.json.encode(fixture["state"]))
    # ``decodes_to`` was the class's name when the fixture was written (it may be renamed since).
    names = {name(type(event)), *(t.partition(":")[2] for t in type(event).renamed_from)}
    assert fixture["decodes_to"] in names
    assert event.timestamp.isoformat() == "2026-01-02T03:04:05.678000+00:00"
    # What it decodes to is a current event: it stores and reads back unchanged.
    assert decode_state(model.topic(type(event)), encode_event(event)) == event


def test_every_event_class_has_a_fixture_of_its_current_version() -> None:
    have = {fixture_version(p) for p in FIXTURES}
    missing = [f"{name(c)}.v{c.class_version}" for c in EVENT_CLASSES if (name(c), c.class_version) not in have]  # noqa: E501
    assert not missing, f"no stored-event fixture for {missing}.\n{ADVICE}"


def test_every_event_version_has_a_fixture() -> None:
    """Each version a class ever had (1..current) is proved readable by a fixture (a renamed
    class's older versions are under its former name)."""
    have = {fixture_version(p) for p in FIXTURES}
    missing = []
    for cls in EVENT_CLASSES:
        names = {name(cls), *(topic.partition(":")[2] for topic in cls.renamed_from)}
        missing += [
            f"{name(cls)}.v{v}" for v in range(1, cls.class_version) if not any((n, v) in have for n in names)
        ]
    assert not missing, f"no stored-event fixture for {missing}.\n{ADVICE}"


def test_the_event_shapes_match_the_schema_snapshot() -> None:
    check_schemas(current_schemas(), read_snapshot())


# -- the check fails when it should ---------------------------------------------------


class SendFailed(model.DomainEvent, frozen=True, kw_only=True):
    """``Message.SendFailed`` with one field renamed (``code`` -> ``error_code``), nothing else."""

    reason: str
    error_code: str | None = None
    attempts: int = 1


def test_a_renamed_field_without_a_version_bump_fails_the_check() -> None:
    """The defect this guards against: a renamed field with a default decodes old events
    silently with the default. The snapshot check refuses the change and says what to do."""
    fixture = json.loads(next(p for p in FIXTURES if p.name == "Message.SendFailed.v1.json").read_text())
    register_topic("tests.unit:SendFailed", SendFailed)
    silently = decode_state("tests.unit:SendFailed", msgspec.json.encode(fixture["state"]))
    assert fixture["state"]["code"] and silently.error_code is None  # the old value is lost, silently

    current = current_schemas()
    current["Message.SendFailed"] = schema_of(SendFailed)
    problems = schema_problems(current, read_snapshot())
    assert problems == ["Message.SendFailed: its shape changed but its class_version is still 1"]
    with pytest.raises(AssertionError) as failed:
        check_schemas(current, read_snapshot())
    advice = str(failed.value)
    assert "Message.SendFailed: its shape changed" in advice
    assert "bump the class's `class_version`" in advice and "upcast_vN_vN+1" in advice
    assert "add one for the new version" in advice
    assert "python -m tests.fixtures.make_event_fixtures" in advice


class SendFailedV2(SendFailed, frozen=True, kw_only=True):
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["error_code"] = state.pop("code", None)


def test_a_bump_is_accepted_only_with_a_regenerated_snapshot_and_a_fixture() -> None:
    current = current_schemas()
    current["Message.SendFailed"] = schema_of(SendFailedV2)
    (problem,) = schema_problems(current, read_snapshot())
    assert "version 2 is not in the snapshot" in problem and "make event-fixtures" in problem
    snapshot = read_snapshot()
    snapshot["Message.SendFailed"] = schema_of(SendFailedV2)
    assert schema_problems(current, snapshot) == []


def test_a_bump_without_an_upcaster_fails_on_the_old_fixture() -> None:
    """Bumping the version alone is not enough: the old fixture no longer decodes."""

    class NoUpcaster(SendFailed, frozen=True, kw_only=True):
        class_version: ClassVar[int] = 2

    fixture = json.loads(next(p for p in FIXTURES if p.name == "Message.SendFailed.v1.json").read_text())
    register_topic("tests.unit:NoUpcaster", NoUpcaster)
    register_topic("tests.unit:SendFailedV2", SendFailedV2)
    state = msgspec.json.encode(fixture["state"])
    with pytest.raises(MapperDeserialisationError, match="upcast_v1_v2"):
        decode_state("tests.unit:NoUpcaster", state)
    assert decode_state("tests.unit:SendFailedV2", state).error_code == fixture["state"]["code"]


def test_new_event_classes_and_dropped_ones_are_named() -> None:
    current = current_schemas()
    snapshot = read_snapshot()
    current["Message.Failed"] = current.pop("Message.SendFailed")
    problems = schema_problems(current, snapshot)
    assert any(p.startswith("Message.Failed: not in the schema snapshot") for p in problems)
    assert "Message.SendFailed: in the snapshot but no such event class" in problems


def test_regenerating_the_snapshot_does_not_hide_an_unversioned_change() -> None:
    from tests.fixtures.make_event_fixtures import unversioned_changes  # noqa: PLC0415

    current = current_schemas()
    assert unversioned_changes(current, read_snapshot()) == []
    current["Message.SendFailed"] = schema_of(SendFailed)
    assert unversioned_changes(current, read_snapshot()) == ["Message.SendFailed"]
    current["Message.SendFailed"] = schema_of(SendFailedV2)  # bumped: regenerating is right
    assert unversioned_changes(current, read_snapshot()) == []
