"""The text rule: refuse at the API, make safe where engine text is written."""

from __future__ import annotations

import pytest

from warest.domain.errors import InvalidValue
from warest.domain.text import checked, safe, safe_json

POISON = ["a\x00b", "x\ud800y", "\udfff", "\x00"]


@pytest.mark.parametrize("value", POISON)
def test_checked_refuses_nul_and_lone_surrogates_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        checked(value, "message")
    assert caught.value.field == "message"
    assert "NUL" in caught.value.reason


def test_checked_bounds_length_and_keeps_what_is_fine() -> None:
    fine = "hé \u200f RTL \U0001f600 emoji\nline"
    assert checked(fine, "m") == fine
    with pytest.raises(InvalidValue) as caught:
        checked("a" * 11, "caption", max_length=10)
    assert caught.value.field == "caption"
    assert "10" in caught.value.reason


@pytest.mark.parametrize("value", POISON)
def test_safe_replaces_every_unsafe_code_point(value: str) -> None:
    out = safe(value)
    assert "\x00" not in out
    out.encode("utf-8")  # would raise on a lone surrogate
    assert len(out) == len(value)


def test_safe_json_reaches_keys_and_nested_values() -> None:
    doc = {"k\x00": ["v\ud800", {"n": "\x00"}], "n": 1, "b": None}
    out = safe_json(doc)
    assert out == {"k\ufffd": ["v\ufffd", {"n": "\ufffd"}], "n": 1, "b": None}
