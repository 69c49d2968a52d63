"""SessionService against the in-memory ports: creating, configuring and deleting sessions in
a registry, and tenant isolation. Logins need a running engine and are not tested here (no
engine is configured: starting one is refused)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.fakes import FakeMessagingQueries, FakeRegistryQueries, FakeWaiter, InMemoryEventStore
from warest.app.errors import Unavailable
from warest.app.manager import EngineUnavailable, SessionManager
from warest.app.records import Principal, SessionRecord
from warest.app.runtime import QueueSettings
from warest.app.sessions import SessionService
from warest.domain import ids
from warest.domain.errors import InvalidValue, SessionNotFound
from warest.domain.sessions import Session

ALICE = Principal(user_id=uuid4(), username="alice", registry="ALICE", role="user")
BOB = Principal(user_id=uuid4(), username="bob", registry="BOB", role="user")


class Sessions:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.waiter = FakeWaiter(self.store)
        manager = SessionManager({}, self.store, FakeMessagingQueries(self.store), QueueSettings())
        queries = FakeRegistryQueries(self.store)
        self.service = SessionService(self.store, queries, self.waiter, manager, "sandbox")
        self.deleted: list[SessionRecord] = []

        async def cleanup(record: SessionRecord) -> None:
            self.deleted.append(record)

        self.service.when_deleted(cleanup)


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


async def test_ensure_creates_a_session_once(sessions: Sessions) -> None:
    record, created = await sessions.service.ensure(ALICE, "main", label="Sales", auto_start=False)
    assert created
    assert (record.registry, record.session_id, record.label) == ("ALICE", "main", "Sales")
    assert (record.auto_start, record.engine, record.status) == (False, "sandbox", "created")
    again, created_again = await sessions.service.ensure(ALICE, "main", label="Other")
    assert not created_again and again.label == "Sales"
    assert sessions.store.kinds(record.id) == ["Created"]


@pytest.mark.parametrize(
    ("name", "engine", "field"),
    [("bad name", None, "sessionId"), ("x" * 65, None, "sessionId"), ("main", "whatsmeow", "engine")],
)
async def test_invalid_names_and_engines_are_refused_by_field(
    sessions: Sessions, name: str, engine: str | None, field: str
) -> None:
    with pytest.raises(InvalidValue) as refused:
        await sessions.service.ensure(ALICE, name, engine=engine)
    assert refused.value.field == field
    assert sessions.store.log == []


async def test_two_tenants_may_both_have_main_and_never_see_each_other(sessions: Sessions) -> None:
    alices, _ = await sessions.service.ensure(ALICE, "main", label="Alice's")
    bobs, created = await sessions.service.ensure(BOB, "main", label="Bob's")
    assert created and alices.id != bobs.id
    assert (await sessions.service.get(ALICE, "main")).label == "Alice's"
    assert [r.label for r in await sessions.service.owned(BOB)] == ["Bob's"]

    await sessions.service.ensure(ALICE, "only-alice")
    for act in (
        sessions.service.get(BOB, "only-alice"),
        sessions.service.configure(BOB, "only-alice", label="mine"),
        sessions.service.delete(BOB, "only-alice"),
    ):
        with pytest.raises(SessionNotFound):
            await act
    assert [r.session_id for r in await sessions.service.owned(ALICE)] == ["main", "only-alice"]
    assert [r.session_id for r in await sessions.service.list_registry("BOB")] == ["main"]
    assert sessions.store.kinds(ids.session_id("ALICE", "only-alice")) == ["Created"]


async def test_configure_changes_label_and_auto_start(sessions: Sessions) -> None:
    await sessions.service.ensure(ALICE, "main")
    record = await sessions.service.configure(ALICE, "main", label="Support", auto_start=False)
    assert (record.label, record.auto_start) == ("Support", False)
    await sessions.service.configure(ALICE, "main", label="Support")  # nothing changes
    assert sessions.store.kinds(record.id) == ["Created", "Configured"]
    with pytest.raises(InvalidValue) as refused:
        await sessions.service.configure(ALICE, "main", label="bad\nlabel")
    assert refused.value.field == "label"


async def test_delete_cleans_up_first_and_a_new_session_inherits_nothing(sessions: Sessions) -> None:
    record, _ = await sessions.service.ensure(ALICE, "main", label="Old")
    await sessions.service.recent(ALICE, "main")  # remembered for the hot paths
    await sessions.service.delete(ALICE, "main")
    assert sessions.deleted == [record]
    with pytest.raises(SessionNotFound):
        await sessions.service.get(ALICE, "main")
    with pytest.raises(SessionNotFound):
        await sessions.service.recent(ALICE, "main")  # a delete made here is seen at once
    with pytest.raises(SessionNotFound):
        await sessions.service.delete(ALICE, "main")

    again, created = await sessions.service.ensure(ALICE, "main")
    assert created and again.id == record.id and again.label == "main"
    session = sessions.store.load(record.id)
    assert isinstance(session, Session) and session.incarnation == 2
    assert sessions.store.kinds(record.id) == ["Created", "Deleted", "Created"]


async def test_a_read_model_that_stays_behind_answers_unavailable(sessions: Sessions) -> None:
    sessions.waiter.behind = True
    with pytest.raises(Unavailable):
        await sessions.service.ensure(ALICE, "main")


async def test_a_login_needs_a_configured_engine(sessions: Sessions) -> None:
    with pytest.raises(EngineUnavailable, match="sandbox"):
        await sessions.service.login(ALICE, "main")
    assert sessions.store.log == []  # refused before anything is recorded


async def test_two_creations_at_once_create_one_session(sessions: Sessions) -> None:
    """Both callers saw no session; the one that saves second meets the first's version 1
    and answers the first's session, not created by it."""
    save = sessions.store.save
    raced: list[bool] = []

    async def another_caller_first(*aggregates: object) -> int:
        if not raced:
            raced.append(True)
            sessions.store.put(Session.create("ALICE", "main", "theirs", True, "sandbox"))
        return await save(*aggregates)

    sessions.store.save = another_caller_first  # type: ignore[method-assign]
    record, created = await sessions.service.ensure(ALICE, "main", label="mine")
    assert not created and record.label == "theirs"
    assert sessions.store.kinds(record.id) == ["Created"]
