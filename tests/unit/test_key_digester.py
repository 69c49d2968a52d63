"""API keys are stored as HMAC-SHA256(pepper, key) and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from warest.app.security import KeyDigester, new_api_key, token_digest

PEPPER = b"p" * 32
OTHER_PEPPER = b"q" * 32


def test_the_right_key_matches_its_digest() -> None:
    digester = KeyDigester(PEPPER)
    key = new_api_key()
    assert digester.matches(key, digester.digest(key))


def test_the_digest_is_hmac_sha256_of_the_key_under_the_pepper() -> None:
    key = "wrst_known-key"
    expected = hmac.new(PEPPER, key.encode(), hashlib.sha256).hexdigest()
    assert KeyDigester(PEPPER).digest(key) == expected
    assert expected != hashlib.sha256(key.encode()).hexdigest()  # not a bare hash


@pytest.mark.parametrize(
    "wrong",
    [
        "wrst_other-key",
        "wrst_known-kex",  # the last character
        "xrst_known-key",  # the first character
        "wrst_known-key ",  # one more character
        "wrst_known-ke",  # one less
        "WRST_KNOWN-KEY",  # case counts
        "",
    ],
)
def test_a_wrong_key_does_not_match(wrong: str) -> None:
    digester = KeyDigester(PEPPER)
    assert not digester.matches(wrong, digester.digest("wrst_known-key"))


def test_a_digest_made_under_another_pepper_does_not_match() -> None:
    key = new_api_key()
    elsewhere = KeyDigester(OTHER_PEPPER).digest(key)
    assert KeyDigester(PEPPER).digest(key) != elsewhere
    assert not KeyDigester(PEPPER).matches(key, elsewhere)
    assert KeyDigester(OTHER_PEPPER).matches(key, elsewhere)


def test_the_stored_digest_is_not_accepted_as_a_key() -> None:
    digester = KeyDigester(PEPPER)
    digest = digester.digest(new_api_key())
    assert not digester.matches(digest, digest)


@pytest.mark.parametrize("stored", [None, ""])
def test_no_stored_digest_matches_nothing(stored: str | None) -> None:
    digester = KeyDigester(PEPPER)
    assert not digester.matches("", stored)
    assert not digester.matches(new_api_key(), stored)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)  # the module security uses
    digester = KeyDigester(PEPPER)
    digest = digester.digest("wrst_known-key")
    assert digester.matches("wrst_known-key", digest)
    assert not digester.matches("wrst_other-key", digest)
    assert calls == [(digest, digest), (digester.digest("wrst_other-key"), digest)]


@pytest.mark.parametrize("pepper", [b"", b"p" * 31])
def test_a_short_pepper_is_refused(pepper: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyDigester(pepper)


def test_new_keys_are_prefixed_and_random() -> None:
    keys = {new_api_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(k.startswith("wrst_") and len(k) >= 5 + 43 for k in keys)


def test_token_digests_are_sha256_without_pepper() -> None:
    assert token_digest("t") == hashlib.sha256(b"t").hexdigest()
