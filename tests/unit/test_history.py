"""The event history service with a fake query port: type names, secrets, follow loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from warest.app.history import (
    EVENT_TYPES,
    EventBatch,
    EventHistory,
    HistoryItem,
    HistoryQuery,
    LoggedEvent,
    UnreadableEvent,
    build_query,
    event_data,
    to_item,
    topics_for,
)
from warest.app.records import Principal
from warest.domain.errors import InvalidValue
from warest.domain.messages import Message
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role

OWNER = Principal(user_id=uuid4(), username="u", registry="REG", role="user")


def test_type_names_are_qualified_names_without_claims() -> None:
    assert "Session.Opened" in EVENT_TYPES and "User.ApiKeyRotated" in EVENT_TYPES
    assert "Message.Received" in EVENT_TYPES
    assert not any(name.startswith("Claim.") for name in EVENT_TYPES)
    assert topics_for(["Session.Opened,User.Disabled", " Session.Opened "]) == (
        "warest.domain.sessions:Session.Opened",
        "warest.domain.users:User.Disabled",
    )
    assert len(topics_for(["User.*"])) == len([n for n in EVENT_TYPES if n.startswith("User.")])
    assert topics_for("Session.Created") == ("warest.domain.sessions:Session.Created",)
    for bad in ("Claim.Claimed", "Nope", "Sess.*", "session.opened"):
        with pytest.raises(InvalidValue) as error:
            topics_for([bad])
        assert error.value.field == "type"


def test_event_data_drops_common_fields_and_secrets() -> None:
    user = User.register(uuid4(), "alice", "REG", Role.USER, "$argon2id$secret", "digest")
    user.rotate_api_key("other-digest")
    registered, rotated = user.collect_events()
    assert event_data(registered) == {"username": "alice", "registry": "REG", "role": "user"}
    assert event_data(rotated) == {}


class FakeLog:
    """Events of one registry; the horizon moves when events are appended."""

    def __init__(self) -> None:
        self.logged: list[LoggedEvent] = []
        self.horizon_value = 0
        self.queries = 0

    def append(self, count: int) -> None:
        session = Session.create("REG", f"s{len(self.logged)}", None, True, "sandbox")
        for _ in range(count - 1):
            session.connecting()
            session.closed("x")
        for event in session.collect_events()[:count]:
            self.horizon_value += 2  # positions have gaps
            self.logged.append(
                LoggedEvent(
                    position=self.horizon_value,
                    stream_id=event.originator_id,
                    version=event.originator_version,
                    registry="REG",
                    session=session.name,
                    event=event,
                )
            )

    async def events(
        self, query: HistoryQuery, after: int, limit: int, upper: int | None = None
    ) -> EventBatch:
        self.queries += 1
        stop = min(self.horizon_value, upper if upper is not None else self.horizon_value)
        found = [e for e in self.logged if after < e.position <= stop][:limit]
        return EventBatch(events=found, horizon=stop)

    async def horizon(self) -> int:
        return self.horizon_value


class FakeWaiter:
    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        await asyncio.sleep(min(timeout, 0.01))
        return False

    async def wait_latest(self, timeout: float = 5.0) -> bool:
        return True


async def test_follow_sends_each_event_once_then_new_ones_and_heartbeats() -> None:
    log = FakeLog()
    log.append(3)
    history = EventHistory(log, FakeWaiter())
    stream = await history.follow(OWNER, after=2, heartbeat_s=0.05, poll_s=0.01)
    seen: list[HistoryItem] = []
    heartbeats = 0
    async for batch in stream:
        if not batch:
            heartbeats += 1
            if heartbeats == 1:
                log.append(2)
            if heartbeats == 3:
                break
        seen.extend(batch)
    assert [i.position for i in seen] == [4, 6, 8, 10]
    assert seen[0].type == "Session.ConnectionStarted" and seen[-1].type == "Session.ConnectionStarted"
    assert heartbeats == 3


async def test_page_and_export_validate_and_page_through() -> None:
    log = FakeLog()
    for _ in range(5):
        log.append(3)
    history = EventHistory(log)
    assert [i.position for i in await history.page(OWNER, after=4, limit=2)] == [6, 8]
    with pytest.raises(InvalidValue) as error:
        await history.page(OWNER, limit=1001)
    assert error.value.field == "limit"
    with pytest.raises(InvalidValue):
        await history.page(OWNER, after=-1)
    exported = [i async for i in history.export(None, after=0, upper=20)]
    assert [i.position for i in exported] == list(range(2, 21, 2))
    assert {i.registry for i in exported} == {"REG"}
    assert [i.registry async for i in history.export("REG")] == [None] * 15
    with pytest.raises(RuntimeError):
        await history.follow(OWNER)


def _starred_log() -> FakeLog:
    """Star / unstar five times: as the old topic ``Message.Starred`` holds both kinds, the
    query port returns both (this fake ignores topics altogether)."""
    log = FakeLog()
    message = Message.receive("REG", "s", "W1", chat="c@s.whatsapp.net", sender="c@s.whatsapp.net")
    for _ in range(5):
        message.star(True)
        message.star(False)
    for event in message.collect_events()[1:]:
        log.horizon_value += 1
        log.logged.append(LoggedEvent(position=log.horizon_value, stream_id=event.originator_id,
                                      version=event.originator_version, registry="REG", session="s",
                                      event=event))  # fmt: skip
    return log


async def test_a_type_filter_keeps_that_type_only_and_fills_the_page() -> None:
    assert topics_for("Message.Unstarred") == (
        "warest.domain.messages:Message.Unstarred",
        "warest.domain.messages:Message.Starred",  # old unstar events are stored there
    )
    log = _starred_log()
    history = EventHistory(log, FakeWaiter())
    page = await history.page(OWNER, types=["Message.Unstarred"], limit=3)
    assert [(i.type, i.position) for i in page] == [("Message.Unstarred", p) for p in (2, 4, 6)]
    exported = [i.type async for i in history.export("REG", types=["Message.Starred"])]
    assert exported == ["Message.Starred"] * 5
    stream = await history.follow(OWNER, types=["Message.Unstarred"], heartbeat_s=0.05, poll_s=0.01)
    first = await anext(stream)
    assert {i.type for i in first} == {"Message.Unstarred"} and len(first) == 5


def test_an_unreadable_event_is_listed_not_failed() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    unreadable = UnreadableEvent(name="Session.Opened", timestamp=when, reason="from the future")
    logged = LoggedEvent(position=7, stream_id=uuid4(), version=3, registry="REG", session="s",
                         event=unreadable)  # fmt: skip
    item = to_item(logged)
    assert (item.type, item.time, item.data) == ("Session.Opened", when, {"unreadable": "from the future"})
    assert not build_query("REG", types=["Session.Opened"]).wants(logged.event)


def test_a_former_type_name_still_selects_its_events() -> None:
    """``Chat.PinnedChanged`` (pinned and unpinned in one event) became ``Chat.Pinned`` and
    ``Chat.Unpinned``: the old name selects both, under the old topic and the new ones."""
    assert [c.__qualname__ for c in build_query("REG", types=["Chat.PinnedChanged"]).types] == [
        "Chat.Pinned",
        "Chat.Unpinned",
    ]
    assert set(topics_for("Chat.PinnedChanged")) == {
        "warest.domain.chats:Chat.Pinned",
        "warest.domain.chats:Chat.Unpinned",
        "warest.domain.chats:Chat.PinnedChanged",
    }


def test_the_former_session_lifecycle_names_select_the_renamed_events() -> None:
    """``Session.Connecting``, ``Reconnecting`` and ``Unavailable`` were renamed to past tense:
    their old names still filter the history, under the old topic and the new one."""
    renamed = {
        "Session.Connecting": "Session.ConnectionStarted",
        "Session.Reconnecting": "Session.ConnectionLost",
        "Session.Unavailable": "Session.StartDeferred",
    }
    for old, new in renamed.items():
        assert [c.__qualname__ for c in build_query("REG", types=[old]).types] == [new]
        assert set(topics_for(old)) == {f"warest.domain.sessions:{old}", f"warest.domain.sessions:{new}"}
        assert build_query("REG", types=[old]).types == build_query("REG", types=[new]).types
