"""Input rules at the boundary: the request-body text rule, integer bounds, and the JSON
depth guard."""

from __future__ import annotations

import msgspec
import pytest

from warest.api.errors import ApiError
from warest.api.guards_input import MAX_JSON_DEPTH, json_depth_exceeds
from warest.api.params import POSITION_MAX, Body, int_param, page_limit
from warest.domain.errors import InvalidValue


class Sample(Body, kw_only=True, rename={"sender": "from"}):
    limits = {"from": 5}

    sender: str = ""
    note: str | None = None
    tags: list[str] | None = None
    extra: dict[str, object] | None = None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"from": "a\\u0000"}', "from"),
        (b'{"from": "abcdef"}', "from"),
        (b'{"note": "x\\u0000y"}', "note"),
        (b'{"tags": ["ok", "b\\u0000"]}', "tags"),
        (b'{"extra": {"k": {"deep": "v\\u0000"}}}', "extra"),
        (b'{"extra": {"k\\u0000": 1}}', "extra"),
    ],
)
def test_body_strings_obey_the_text_rule_naming_the_json_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidValue) as error:
        msgspec.json.decode(body, type=Sample)
    assert error.value.field == field


def test_body_accepts_ordinary_text() -> None:
    decoded = msgspec.json.decode('{"from": "abcde", "note": "héllo 😀", "tags": ["a"]}', type=Sample)
    assert decoded.sender == "abcde" and decoded.note == "héllo 😀"
    long_note = "x" * 65_536
    assert msgspec.json.decode(msgspec.json.encode({"note": long_note}), type=Sample).note == long_note
    with pytest.raises(InvalidValue):
        msgspec.json.decode(msgspec.json.encode({"note": long_note + "x"}), type=Sample)


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        (str(2**63), {}, "at least 0"),
        ("-1", {}, "at least 0"),
        ("0", {"low": 1, "high": 10}, "between 1 and 10"),
        ("11", {"low": 1, "high": 10}, "between 1 and 10"),
        ("١٢", {}, "integer"),
        ("1.5", {}, "integer"),
    ],
)
def test_integer_parameters_are_bounded(raw: str, kwargs: dict[str, int], reason: str) -> None:
    with pytest.raises(ApiError) as error:
        int_param(raw, "after", 0, **kwargs)
    assert error.value.results == [
        {"field": "after", "reason": error.value.results[0]["reason"], "source": "query"}  # type: ignore[index]
    ]
    assert reason in error.value.message


def test_integer_parameters_within_bounds() -> None:
    assert int_param(None, "after", 7) == 7
    assert int_param(str(POSITION_MAX), "after", 0) == POSITION_MAX
    assert page_limit(500, 500) == 500
    with pytest.raises(ApiError):
        page_limit(-1, 500)


def test_json_depth_guard() -> None:
    assert json_depth_exceeds(b"[" * 1000 + b"]" * 1000)
    assert json_depth_exceeds(b'{"a":' * 1000 + b"1" + b"}" * 1000)
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not json_depth_exceeds(at_limit)
    assert json_depth_exceeds(b"[" + at_limit + b"]")
    # Brackets inside strings do not count, escaped quotes included.
    text = b'{"message": "' + b"[{" * 5000 + b'\\"' + b"[" * 100 + b'"}'
    assert not json_depth_exceeds(text)
    # Wide is not deep.
    assert not json_depth_exceeds(b"[" + b"[],{}," * 10_000 + b"1]")
