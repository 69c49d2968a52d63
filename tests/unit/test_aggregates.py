"""The rules of every aggregate, and their old events read through the real mapper.

Each aggregate is saved to and loaded from the in-memory event store (the real
``MsgspecMapper``), so what is asserted is what survives the log; old versions of events
are appended as older code stored them and read back upcast.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.fakes import InMemoryEventStore
from warest.app.ports import ConcurrencyConflict
from warest.domain.chats import Chat
from warest.domain.claims import Claim
from warest.domain.errors import AlreadyExists, DomainError, InvalidValue, NotFound, SessionNotFound
from warest.domain.idempotency import IdempotencyRecord
from warest.domain.messages import EDIT_WINDOW, REVOKE_WINDOW, ActionNotAllowed, Message, Status
from warest.domain.model import topic
from warest.domain.sessions import Session
from warest.domain.sessions import Status as SessionStatus
from warest.domain.users import User
from warest.domain.values import Role
from warest.domain.webhooks import WebhookEndpoint

SENT_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHAT = "6281234500000@s.whatsapp.net"
ME = "6289900000000@s.whatsapp.net"
SECOND = timedelta(seconds=1)
AT_BAN = datetime(2026, 12, 2, tzinfo=UTC)


def sent_message() -> Message:
    message = Message.queue("REG", "main", CHAT, "3EB0A1", "hello", [], None, None)
    message.mark_sent("3EB0A1", SENT_AT, 1)
    return message


def received_message() -> Message:
    return Message.receive("REG", "main", "3EB0B2", chat=CHAT, sender=CHAT, text="hi", sent_at=SENT_AT)


def reloaded(aggregate: Any) -> Any:
    """``aggregate`` as the log gives it back (its pending events are saved)."""
    store = InMemoryEventStore()
    store.put(aggregate)
    return store.load(aggregate.id)


# -- Message: the edit and revoke windows ---------------------------------------------------


def test_the_edit_window_is_fifteen_minutes() -> None:
    assert timedelta(minutes=15) == EDIT_WINDOW


def test_an_edit_at_the_end_of_the_window_is_recorded() -> None:
    message = sent_message()
    message.edit("hello!", SENT_AT + timedelta(minutes=15), by=ME)
    assert message.text == "hello!" and message.edits == 1


def test_an_edit_just_inside_the_window_is_recorded() -> None:
    message = sent_message()
    message.edit("hello!", SENT_AT + timedelta(minutes=14, seconds=59))
    assert [type(e).__name__ for e in message.pending_events][-1] == "Edited"


def test_an_edit_a_second_after_the_window_is_refused() -> None:
    message = sent_message()
    with pytest.raises(ActionNotAllowed, match="15 minutes"):
        message.edit("too late", SENT_AT + timedelta(minutes=15) + SECOND)
    assert message.text == "hello" and message.edits == 0


@pytest.mark.parametrize("late", [timedelta(hours=1), timedelta(days=1)])
def test_an_edit_hours_or_days_later_is_refused(late: timedelta) -> None:
    with pytest.raises(ActionNotAllowed):
        sent_message().edit("too late", SENT_AT + late)


def test_the_revoke_window_is_sixty_hours() -> None:
    assert timedelta(hours=60) == REVOKE_WINDOW


def test_a_revoke_at_the_end_of_the_window_is_recorded() -> None:
    message = sent_message()
    message.revoke(SENT_AT + timedelta(hours=60), by=ME)
    assert message.revoked


def test_a_revoke_a_second_after_the_window_is_refused() -> None:
    message = sent_message()
    with pytest.raises(ActionNotAllowed, match="60 hours"):
        message.revoke(SENT_AT + timedelta(hours=60) + SECOND)
    assert not message.revoked


@pytest.mark.parametrize("late", [timedelta(hours=61), timedelta(days=3), timedelta(days=60)])
def test_a_revoke_after_sixty_hours_is_refused(late: timedelta) -> None:
    with pytest.raises(ActionNotAllowed):
        sent_message().revoke(SENT_AT + late)


def test_windows_are_not_enforced_for_what_whatsapp_reports() -> None:
    message = sent_message()
    message.edit("edited on the phone", SENT_AT + timedelta(days=2), enforce=False)
    message.revoke(SENT_AT + timedelta(days=30), enforce=False)
    assert message.text == "edited on the phone" and message.revoked


def test_only_own_sent_text_messages_can_be_edited() -> None:
    with pytest.raises(ActionNotAllowed, match="own"):
        received_message().edit("mine now", SENT_AT)
    queued = Message.queue("REG", "main", CHAT, "3EB0Q", "hello", [], None, None)
    with pytest.raises(ActionNotAllowed, match="sent text"):
        queued.edit("x", SENT_AT)
    with pytest.raises(ActionNotAllowed, match="sent text"):
        own_image = Message.receive(
            "REG", "main", "3EB0I", chat=CHAT, from_me=True, sender=ME, kind="image", sent_at=SENT_AT
        )  # sent from the account's phone
        own_image.edit("x", SENT_AT)
    with pytest.raises(InvalidValue) as refused:
        sent_message().edit("   ", SENT_AT)
    assert refused.value.field == "text"


def test_only_own_sent_messages_can_be_revoked_and_twice_records_once() -> None:
    with pytest.raises(ActionNotAllowed, match="own"):
        received_message().revoke(SENT_AT)
    with pytest.raises(ActionNotAllowed, match="not sent"):
        Message.queue("REG", "main", CHAT, "3EB0Q", "x", [], None, None).revoke(SENT_AT)
    message = sent_message()
    message.revoke(SENT_AT)
    message.revoke(SENT_AT)
    assert [type(e).__name__ for e in message.pending_events].count("Revoked") == 1


def test_a_revoked_or_deleted_message_takes_no_more_actions() -> None:
    revoked = sent_message()
    revoked.revoke(SENT_AT)
    acts: list[Callable[[Message], None]] = [
        lambda m: m.react(ME, "👍", SENT_AT),
        lambda m: m.star(True),
        lambda m: m.pin("24h", SENT_AT),
    ]
    for act in acts:
        with pytest.raises(ActionNotAllowed, match="deleted for everyone"):
            act(revoked)
    deleted = received_message()
    deleted.delete_for_me()
    with pytest.raises(ActionNotAllowed, match="was deleted"):
        deleted.react(ME, "👍", SENT_AT)


def test_an_edit_reported_twice_or_out_of_order_records_once() -> None:
    message = received_message()
    message.edit("second", SENT_AT + 2 * SECOND, enforce=False)
    message.edit("second", SENT_AT + 3 * SECOND, enforce=False)  # delivered again
    message.edit("first", SENT_AT + SECOND, enforce=False)  # older, arriving late
    assert message.text == "second" and message.edits == 1


# -- Message: statuses, reactions, stars, pins ---------------------------------------------


def test_statuses_only_move_forward() -> None:
    message = sent_message()
    assert message.apply_receipt(Status.DELIVERED, SENT_AT)
    assert not message.apply_receipt(Status.SERVER, SENT_AT)
    assert not message.apply_receipt(Status.DELIVERED, SENT_AT)
    assert message.apply_receipt(Status.READ, SENT_AT)
    assert not message.apply_receipt(Status.FAILED, SENT_AT)  # not a receipt
    assert reloaded(message).status == Status.READ


def test_a_failed_message_takes_no_receipt_and_a_sent_one_cannot_fail() -> None:
    failed = Message.queue("REG", "main", CHAT, "3EB0F", "x", [], None, None)
    failed.mark_failed("no route", "E1", 3)
    assert not failed.apply_receipt(Status.READ, SENT_AT)
    assert failed.status == Status.FAILED and failed.failure == "no route" and failed.attempts == 3
    with pytest.raises(DomainError):
        failed.mark_sent("3EB0F", SENT_AT, 1)
    with pytest.raises(DomainError):
        sent_message().mark_failed("late", None, 1)


def test_reactions_replace_and_remove_and_repeat_nothing() -> None:
    message = received_message()
    message.react(ME, "👍", SENT_AT)
    message.react(ME, "👍", SENT_AT)
    message.react(ME, "❤", SENT_AT)
    message.react(CHAT, "😂", SENT_AT)
    message.react(CHAT, "", SENT_AT)
    kinds = [type(e).__name__ for e in message.pending_events[1:]]
    assert kinds == ["Reacted", "Reacted", "Reacted", "ReactionRemoved"]
    assert reloaded(message).reactions == {ME: "❤"}
    with pytest.raises(InvalidValue):
        message.react(ME, "x" * 17, SENT_AT)
    with pytest.raises(InvalidValue):
        message.react(ME, "  ", SENT_AT)


def test_stars_and_pins() -> None:
    message = received_message()
    message.star(True)
    message.star(True)
    message.pin("7d", SENT_AT)
    message.pin(None, SENT_AT)
    message.pin(None, SENT_AT)
    assert [type(e).__name__ for e in message.pending_events[1:]] == ["Starred", "Pinned", "Unpinned"]
    with pytest.raises(InvalidValue) as refused:
        message.pin("1y", SENT_AT)
    assert refused.value.field == "duration"
    pinned = received_message()
    pinned.pin("24h", SENT_AT)
    assert reloaded(pinned).pinned_until == SENT_AT + timedelta(hours=24)


def test_a_receipt_for_a_queued_message_records_its_sent_first() -> None:
    message = Message.queue("REG", "main", CHAT, "3EB0R", "x", [], None, None)
    assert message.apply_receipt(Status.DELIVERED, SENT_AT)
    assert [type(e).__name__ for e in message.pending_events] == ["Queued", "Sent", "StatusChanged"]


# -- Message and Chat: old versions are upcast ----------------------------------------------


def test_old_message_toggles_load_as_their_split_events() -> None:
    store = InMemoryEventStore()
    message = received_message()
    store.put(message)
    at = '"at":"2026-12-01T12:00:00Z"'
    head = f'"originator_id":"{message.id}","timestamp":"2026-12-01T12:00:00Z"'
    old = [
        ("Message.Reacted", f'{{{head},"originator_version":2,"by":"{ME}","emoji":"👍",{at}}}'),
        ("Message.Reacted", f'{{{head},"originator_version":3,"by":"{ME}","emoji":"",{at}}}'),
        ("Message.Starred", f'{{{head},"originator_version":4,"starred":true}}'),
        ("Message.Starred", f'{{{head},"originator_version":5,"starred":false}}'),
        ("Message.Pinned", f'{{{head},"originator_version":6,"until":"2026-12-02T12:00:00Z"}}'),
        ("Message.Pinned", f'{{{head},"originator_version":7,"until":null}}'),
    ]
    for version, (name, state) in enumerate(old, start=2):
        store.append_stored(message.id, version, f"warest.domain.messages:{name}", state.encode())
    assert store.kinds(message.id)[1:] == [
        "Reacted", "ReactionRemoved", "Starred", "Unstarred", "Pinned", "Unpinned"
    ]  # fmt: skip
    loaded = store.load(message.id)
    assert loaded.reactions == {} and not loaded.starred and loaded.pinned_until is None
    assert loaded.version == 7


def test_old_chat_toggles_and_the_renamed_pin_load_as_todays_events() -> None:
    store = InMemoryEventStore()
    chat = Chat.start("REG", "main", CHAT)
    store.put(chat)
    head = f'"originator_id":"{chat.id}","timestamp":"2026-12-01T12:00:00Z"'
    old = [
        ("Chat.Muted", '"until":"2026-12-02T12:00:00Z"'),
        ("Chat.Muted", '"until":null'),
        ("Chat.Archived", '"archived":true'),
        ("Chat.Archived", '"archived":false'),
        ("Chat.PinnedChanged", '"pinned":true'),
        ("Chat.PinnedChanged", '"pinned":false'),
        ("Chat.PinnedChanged", '"pinned":true'),
    ]
    for version, (name, fields) in enumerate(old, start=2):
        state = f'{{{head},"originator_version":{version},{fields}}}'
        store.append_stored(chat.id, version, f"warest.domain.chats:{name}", state.encode())
    assert store.kinds(chat.id)[1:] == [
        "Muted", "Unmuted", "Archived", "Unarchived", "Pinned", "Unpinned", "Pinned"
    ]  # fmt: skip
    loaded = store.load(chat.id)
    assert loaded.muted_until is None and not loaded.archived and loaded.pinned


# -- Chat ------------------------------------------------------------------------------------


def test_chat_settings_record_changes_only() -> None:
    chat = Chat.start("REG", "main", CHAT)
    until = SENT_AT + timedelta(hours=8)
    chat.mute(until)
    chat.mute(until)
    chat.mute(None)
    chat.archive(False)
    chat.archive(True)
    chat.pin(True)
    chat.pin(True)
    chat.mark_read(SENT_AT, ["3EB0B2"])
    chat.clear(SENT_AT)
    kinds = [type(e).__name__ for e in chat.pending_events]
    assert kinds == ["Started", "Muted", "Unmuted", "Archived", "Pinned", "MarkedRead", "Cleared"]
    loaded = reloaded(chat)
    assert (loaded.archived, loaded.pinned, loaded.read_at, loaded.cleared_at) == (
        True, True, SENT_AT, SENT_AT
    )  # fmt: skip


def test_a_chats_id_depends_on_the_sessions_incarnation() -> None:
    first, again = Chat.start("REG", "main", CHAT, 1), Chat.start("REG", "main", CHAT, 2)
    assert first.id != again.id
    assert Chat.start("OTHER", "main", CHAT).id != first.id


# -- Session -----------------------------------------------------------------------------------


def test_a_session_moves_through_its_lifecycle() -> None:
    session = Session.create("REG", "main", None, True, "sandbox")
    assert session.status == SessionStatus.CREATED and session.label == "main" and session.incarnation == 1
    session.issue_qr(20, 1)
    assert str(session.status) == "qr"
    session.connecting()
    session.opened(ME, None, "Alice")
    session.opened(ME, None, "Alice")  # the same account again: nothing new
    assert session.is_open
    session.reconnecting(1, "lost")
    session.reconnecting(2, "lost")  # one outage, one event
    session.connecting()  # part of the outage
    session.suspended("too long", SENT_AT)
    session.suspended("too long", SENT_AT)
    session.logged_out("phone")
    session.logged_out("phone")
    session.closed("stop")  # a logged-out session is not closed again
    kinds = [type(e).__name__ for e in session.pending_events]
    assert kinds == [
        "Created", "QrIssued", "ConnectionStarted", "Opened", "ConnectionLost", "Suspended", "LoggedOut"
    ]  # fmt: skip
    assert reloaded(session).status == SessionStatus.LOGGED_OUT


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (lambda s: s.closed("stopped"), SessionStatus.CLOSED),
        (lambda s: s.replaced("another device"), SessionStatus.REPLACED),
        (lambda s: s.banned("spam", AT_BAN), SessionStatus.BANNED),
        (lambda s: s.logged_out("phone"), SessionStatus.LOGGED_OUT),
    ],
)
def test_an_open_session_ends_and_keeps_its_reason(
    end: Callable[[Session], None], status: SessionStatus
) -> None:
    session = Session.create("REG", "main", None, True, "sandbox")
    session.opened(ME, None, "Me")
    end(session)
    loaded = reloaded(session)
    assert loaded.status == status and not loaded.is_open
    loaded.closed("stopped")  # a closed or logged-out session is not closed again
    kinds = [type(e).__name__ for e in loaded.pending_events]
    assert kinds == ([] if status in (SessionStatus.CLOSED, SessionStatus.LOGGED_OUT) else ["Closed"])


def test_suspended_only_during_an_outage_and_unavailable_once() -> None:
    session = Session.create("REG", "main", None, True, "sandbox")
    session.suspended("no outage", SENT_AT)
    assert session.unavailable("no engine")
    assert not session.unavailable("no engine")
    assert [type(e).__name__ for e in session.pending_events] == ["Created", "StartDeferred"]


def test_a_deleted_session_refuses_everything_until_created_again() -> None:
    session = Session.create("REG", "main", "Sales", True, "sandbox")
    with pytest.raises(AlreadyExists):
        session.recreate(None, True, "sandbox")
    session.delete()
    for act in (session.delete, lambda: session.configure(label="x"), lambda: session.issue_qr(20, 1)):
        with pytest.raises(SessionNotFound):
            act()
    session.recreate(None, False, "neonize")
    loaded = reloaded(session)
    assert (loaded.deleted, loaded.incarnation, loaded.label, loaded.engine, loaded.auto_start) == (
        False, 2, "main", "neonize", False
    )  # fmt: skip


def test_configure_records_what_changed_only() -> None:
    session = Session.create("REG", "main", "Sales", True, "sandbox")
    session.configure(label="Sales", auto_start=True)
    session.configure()
    session.configure(auto_start=False)
    assert [type(e).__name__ for e in session.pending_events] == ["Created", "Configured"]
    configured = session.pending_events[-1]
    assert isinstance(configured, Session.Configured) and configured.label is None


def test_an_old_qr_event_loads_without_its_secret() -> None:
    store = InMemoryEventStore()
    session = Session.create("REG", "main", None, True, "sandbox")
    store.put(session)
    state = (
        f'{{"originator_id":"{session.id}","originator_version":2,"timestamp":"2026-12-01T12:00:00Z",'
        '"qr":"2@secret-login-string","duration_s":20,"attempt":1}'
    )
    store.append_stored(session.id, 2, topic(Session.QrIssued), state.encode())
    event = store.events(session.id)[1]
    assert isinstance(event, Session.QrIssued) and not hasattr(event, "qr")
    assert store.load(session.id).status == SessionStatus.QR


# -- User -----------------------------------------------------------------------------------------


def test_user_rules() -> None:
    user = User.register(uuid4(), "alice", "REG", Role.USER, None, "d1")
    user.rename("alice")
    user.rotate_api_key("d1")  # the same digest: nothing
    user.rotate_api_key("d2")
    user.change_role(Role.USER)
    user.change_role(Role.ADMIN)
    user.disable()
    user.disable()
    with pytest.raises(DomainError, match="disabled"):
        user.rotate_api_key("d3")
    user.enable()
    user.enable()
    kinds = [type(e).__name__ for e in user.pending_events]
    assert kinds == ["Registered", "ApiKeyRotated", "RoleChanged", "Disabled", "Enabled"]
    loaded = reloaded(user)
    assert (loaded.api_key_digest, loaded.role, loaded.disabled) == ("d2", Role.ADMIN, False)


# -- Claim -------------------------------------------------------------------------------------------


def test_a_claim_is_held_by_one_owner_until_released() -> None:
    alice, bob = uuid4(), uuid4()
    claim = Claim.claim(UUID(int=1), "username", "alice", alice)
    claim.reclaim(alice)  # its owner again: nothing
    with pytest.raises(AlreadyExists, match="username 'alice' is taken"):
        claim.reclaim(bob)
    claim.release()
    claim.release()
    claim.reclaim(bob)
    assert [type(e).__name__ for e in claim.pending_events] == ["Claimed", "Released", "Claimed"]
    assert reloaded(claim).owner_id == bob


async def test_two_first_claims_of_one_key_collide_in_the_store() -> None:
    store = InMemoryEventStore()
    await store.save(Claim.claim(UUID(int=1), "username", "alice", uuid4()))
    user = User.register(uuid4(), "alice", "REG", Role.USER, None, None)
    with pytest.raises(ConcurrencyConflict):
        await store.save(user, Claim.claim(UUID(int=1), "username", "alice", user.id))
    assert store.load(user.id) is None  # atomic: the user was not recorded either


# -- IdempotencyRecord -----------------------------------------------------------------------------


def test_an_idempotency_record_expires_after_its_ttl_and_renews() -> None:
    first, second = [uuid4()], [uuid4()]
    record = IdempotencyRecord.record("REG", "main", "k1", "f1", first, at=SENT_AT)
    ttl = timedelta(hours=24)
    assert not record.expired(SENT_AT + ttl - SECOND, ttl)
    assert record.expired(SENT_AT + ttl, ttl)
    record.renew("f2", second, SENT_AT + ttl)
    loaded = reloaded(record)
    assert (loaded.fingerprint, loaded.message_ids, loaded.recorded_at) == ("f2", second, SENT_AT + ttl)


def test_an_old_idempotency_record_counts_from_its_events_time() -> None:
    store = InMemoryEventStore()
    record_id = uuid4()
    state = (
        f'{{"originator_id":"{record_id}","originator_version":1,"timestamp":"2026-12-01T12:00:00Z",'
        f'"registry":"REG","session":"main","key":"k","fingerprint":"f","message_ids":["{record_id}"]}}'
    )
    store.append_stored(record_id, 1, topic(IdempotencyRecord.Recorded), state.encode())
    assert store.load(record_id).recorded_at == SENT_AT


def test_an_idempotency_records_id_is_its_session_incarnations() -> None:
    one = IdempotencyRecord.record("REG", "main", "k", "f", [], incarnation=1)
    two = IdempotencyRecord.record("REG", "main", "k", "f", [], incarnation=2)
    assert one.id != two.id


# -- WebhookEndpoint ---------------------------------------------------------------------------------


def endpoint() -> WebhookEndpoint:
    return WebhookEndpoint.add("REG", "main", "hooks", "https://example.com/hook", "sealed-1")


def test_an_endpoint_changes_what_differs_and_validates_its_fields() -> None:
    hook = endpoint()
    hook.change("https://example.com/hook", [], None)
    hook.change(events=["message_received", "session_status", "message_received"])
    assert hook.events == ["session_status", "message_received"]  # the catalog's order, once each
    hook.change(description_="")  # clears nothing that is not there
    assert [type(e).__name__ for e in hook.pending_events] == ["Added", "Changed"]
    refusals: list[tuple[str, Callable[[], None]]] = [
        ("url", lambda: hook.change("ftp://example.com")),
        ("url", lambda: hook.change("https://user:pw@example.com")),
        ("events", lambda: hook.change(events=["nope"])),
    ]
    for field, change in refusals:
        with pytest.raises(InvalidValue) as refused:
            change()
        assert refused.value.field == field
    with pytest.raises(InvalidValue) as refused:
        WebhookEndpoint.add("REG", "main", "bad name", "https://example.com", "s")
    assert refused.value.field == "name"


def test_disabling_by_delivery_is_kept_visible_and_enabling_clears_it() -> None:
    hook = endpoint()
    hook.disable("the receiver answered 410", by="delivery")
    hook.disable("again", by="delivery")
    loaded = reloaded(hook)
    assert (loaded.enabled, loaded.disabled_by, loaded.disabled_reason) == (
        False, "delivery", "the receiver answered 410"
    )  # fmt: skip
    hook.enable()
    hook.enable()
    assert [type(e).__name__ for e in hook.pending_events] == ["Enabled"]  # once
    assert (hook.enabled, hook.disabled_by, hook.disabled_reason) == (True, None, None)


def test_a_rotated_secret_signs_alongside_the_new_one_until_its_grace_ends() -> None:
    hook = endpoint()
    hook.rotate_secret("sealed-2", SENT_AT + timedelta(hours=1))
    assert hook.secrets_sealed(SENT_AT) == ["sealed-2", "sealed-1"]
    assert hook.secrets_sealed(SENT_AT + timedelta(hours=1)) == ["sealed-2"]
    hook.rotate_secret("sealed-3", None)
    assert hook.secrets_sealed(SENT_AT) == ["sealed-3"]


def test_a_removed_endpoint_is_gone_until_added_again() -> None:
    hook = endpoint()
    with pytest.raises(AlreadyExists):
        hook.re_add("https://example.com/2", "sealed-2", None, None)
    hook.remove()
    for act in (hook.remove, hook.enable, lambda: hook.change("https://example.com/3")):
        with pytest.raises(NotFound):
            act()
    hook.re_add("https://example.com/2", "sealed-2", ["call"], "again")
    loaded = reloaded(hook)
    assert (loaded.removed, loaded.url, loaded.events, loaded.enabled) == (
        False, "https://example.com/2", ["call"], True
    )  # fmt: skip
