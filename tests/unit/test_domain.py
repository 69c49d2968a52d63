"""Aggregates: events recorded, state derived from them, rules enforced."""

from __future__ import annotations

import uuid

import pytest

from warest.app.security import KeyDigester, new_api_key
from warest.domain import ids
from warest.domain.claims import Claim
from warest.domain.errors import AlreadyExists, DomainError, InvalidValue, NotFound
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role, session_name


def test_user_events_and_state() -> None:
    user = User.register(uuid.uuid4(), "alice", "REG", Role.USER, None, "d1")
    user.rotate_api_key("d1")  # same digest: nothing happens
    user.rotate_api_key("d2")
    user.disable()
    user.disable()  # idempotent
    events = user.collect_events()
    assert [type(e).__name__ for e in events] == ["Registered", "ApiKeyRotated", "Disabled"]
    assert [e.originator_version for e in events] == [1, 2, 3]
    assert user.version == 3 and user.disabled and user.api_key_digest == "d2"
    with pytest.raises(DomainError):
        user.rotate_api_key("d3")


def test_replaying_events_rebuilds_the_same_state() -> None:
    user = User.register(uuid.uuid4(), "bob", "REG", Role.USER, "h", None)
    user.change_role(Role.ADMIN)
    user.rename("robert")
    events = user.collect_events()
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt is not None
    assert (rebuilt.username, rebuilt.role, rebuilt.version) == ("robert", Role.ADMIN, 3)


def test_session_ids_are_scoped_to_the_registry() -> None:
    assert ids.session_id("A", "main") != ids.session_id("B", "main")
    assert ids.session_id("A", "main") == Session.create("A", "main", None, True, "sandbox").id


def test_session_lifecycle_rules() -> None:
    session = Session.create("A", "main", None, True, "sandbox")
    assert session.label == "main"
    session.configure(label="main")  # unchanged: no event
    session.configure(auto_start=False)
    session.configure(auto_start=False)  # unchanged: no event
    session.delete()
    with pytest.raises(NotFound):
        session.configure(label="x")
    session.recreate("again", False, "sandbox")
    assert not session.deleted and session.label == "again"
    with pytest.raises(AlreadyExists):
        session.recreate(None, True, "sandbox")
    kinds = [type(e).__name__ for e in session.collect_events()]
    assert kinds == ["Created", "Configured", "Deleted", "Created"]


def test_claims() -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    claim = Claim.claim(ids.username_claim_id("Alice"), "username", "Alice", owner)
    assert claim.id == ids.username_claim_id("alice")  # case-insensitive usernames
    with pytest.raises(AlreadyExists):
        claim.reclaim(other)
    claim.release()
    claim.reclaim(other)
    assert claim.owner_id == other


def test_session_name_rule() -> None:
    assert session_name("a.b_c-1") == "a.b_c-1"
    for bad in ("", "has space", "x" * 65, "semi;colon"):
        with pytest.raises(InvalidValue):
            session_name(bad)


def test_key_digests_are_peppered_and_compared_safely() -> None:
    digester = KeyDigester(b"p" * 32)
    key = new_api_key()
    digest = digester.digest(key)
    assert digester.matches(key, digest)
    assert not digester.matches(digest, digest)  # the stored digest is not a key
    assert KeyDigester(b"q" * 32).digest(key) != digest  # a different pepper, a different digest
    assert not digester.matches(key, None)
    with pytest.raises(ValueError):
        KeyDigester(b"short")
