"""The neonize translator on real neonize protobuf events (no Go client, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import Conversation
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import HistorySync as HistoryData

from warest.app.happenings import Edited, Me, Receipt, Received, Revoked
from warest.infra.engines.neonize.jids import from_epoch, jid_from_str, jid_to_str
from warest.infra.engines.neonize.translator import (
    EVENT_TYPES,
    ChatPresenceSeen,
    GroupChanged,
    GroupJoined,
    HistorySynced,
    IncomingCall,
    LinkBanned,
    LinkFailed,
    LinkLoggedOut,
    LinkLost,
    LinkOpened,
    LinkReplaced,
    PairingFailed,
    PairingSucceeded,
    PresenceSeen,
    Undecryptable,
    me_from_device,
    translate,
)

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
SENT_MS = 1_714_563_000_123  # 2024-05-01T11:30:00.123Z in milliseconds, as neonize sends it
SENT = datetime(2024, 5, 1, 11, 30, 0, 123000, tzinfo=UTC)


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


ANN = jid("628123456789", device=3)  # an AD JID: the device must not leak into strings
ANN_LID = jid("98765432101234", "lid")
GROUP = jid("120363025246125888", "g.us")


def message_event(
    content: e2e.Message,
    *,
    chat: JID = ANN,
    sender: JID = ANN,
    from_me: bool = False,
    wa_id: str = "3EB0ABC",
    push_name: str = "Ann",
    timestamp: int = SENT_MS,
    is_edit: bool = False,
) -> ev.Message:
    return ev.Message(
        Info=MessageInfo(
            MessageSource=MessageSource(
                Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=chat.Server == "g.us"
            ),
            ID=wa_id,
            Pushname=push_name,
            Timestamp=timestamp,
        ),
        Message=content,
        IsEdit=is_edit,
    )


# -- messages -------------------------------------------------------------------------------


def test_a_plain_text_message_becomes_an_inbound_message() -> None:
    happening = translate(message_event(e2e.Message(conversation="hi")), NOW)
    assert happening == Received(
        wa_id="3EB0ABC",
        chat="628123456789@s.whatsapp.net",
        sender="628123456789@s.whatsapp.net",
        from_me=False,
        kind="text",
        text="hi",
        push_name="Ann",
        mentions=(),
        quoted_id=None,
        sent_at=SENT,
    )


def test_extended_text_carries_mentions_and_the_quoted_id() -> None:
    content = e2e.Message(
        extendedTextMessage=e2e.ExtendedTextMessage(
            text="@628111 @555 look",
            contextInfo=e2e.ContextInfo(
                mentionedJID=["628111@s.whatsapp.net", "555000111@lid"],
                stanzaID="3EB0QUOTED",
                participant="628111@s.whatsapp.net",
            ),
        )
    )
    happening = translate(message_event(content, chat=GROUP, sender=ANN_LID), NOW)
    assert isinstance(happening, Received)
    assert happening.chat == "120363025246125888@g.us"
    assert happening.sender == "98765432101234@lid"  # a LID stays a LID
    assert happening.text == "@628111 @555 look"
    assert happening.mentions == ("628111@s.whatsapp.net", "555000111@lid")
    assert happening.quoted_id == "3EB0QUOTED"


@pytest.mark.parametrize(
    ("content", "kind", "text"),
    [
        (e2e.Message(imageMessage=e2e.ImageMessage(caption="a cat")), "image", "a cat"),
        (e2e.Message(videoMessage=e2e.VideoMessage(caption="a clip")), "video", "a clip"),
        (e2e.Message(ptvMessage=e2e.VideoMessage()), "video", None),
        (e2e.Message(audioMessage=e2e.AudioMessage(PTT=True)), "audio", None),
        (e2e.Message(documentMessage=e2e.DocumentMessage(caption="the invoice")), "document", "the invoice"),
        (e2e.Message(stickerMessage=e2e.StickerMessage()), "sticker", None),
        (e2e.Message(locationMessage=e2e.LocationMessage(degreesLatitude=-6.2)), "location", None),
        (
            e2e.Message(liveLocationMessage=e2e.LiveLocationMessage(caption="on my way")),
            "location",
            "on my way",
        ),
        (e2e.Message(contactMessage=e2e.ContactMessage(displayName="Bob")), "contact", None),
        (
            e2e.Message(contactsArrayMessage=e2e.ContactsArrayMessage(displayName="2 contacts")),
            "contact",
            None,
        ),
        (e2e.Message(pollCreationMessageV3=e2e.PollCreationMessage(name="Lunch?")), "poll", "Lunch?"),
        (e2e.Message(pollCreationMessage=e2e.PollCreationMessage(name="Dinner?")), "poll", "Dinner?"),
        (e2e.Message(groupInviteMessage=e2e.GroupInviteMessage(groupName="Club")), "other", None),
    ],
)
def test_the_kind_and_text_follow_the_content_type(content: e2e.Message, kind: str, text: str | None) -> None:
    happening = translate(message_event(content), NOW)
    assert isinstance(happening, Received)
    assert (happening.kind, happening.text) == (kind, text)


def test_wrapped_content_is_unwrapped() -> None:
    inner = e2e.Message(documentMessage=e2e.DocumentMessage(caption="wrapped caption"))
    content = e2e.Message(
        ephemeralMessage=e2e.FutureProofMessage(
            message=e2e.Message(documentWithCaptionMessage=e2e.FutureProofMessage(message=inner))
        )
    )
    happening = translate(message_event(content), NOW)
    assert isinstance(happening, Received)
    assert (happening.kind, happening.text) == ("document", "wrapped caption")


def test_a_caption_keeps_its_mentions() -> None:
    content = e2e.Message(
        imageMessage=e2e.ImageMessage(
            caption="hey @628111", contextInfo=e2e.ContextInfo(mentionedJID=["628111@s.whatsapp.net"])
        )
    )
    happening = translate(message_event(content), NOW)
    assert isinstance(happening, Received)
    assert happening.mentions == ("628111@s.whatsapp.net",)
    assert happening.quoted_id is None


def test_a_reaction_quotes_the_message_it_reacts_to() -> None:
    content = e2e.Message(reactionMessage=e2e.ReactionMessage(key=MessageKey(ID="3EB0TARGET"), text="👍"))
    happening = translate(message_event(content), NOW)
    assert isinstance(happening, Received)
    assert (happening.kind, happening.text, happening.quoted_id) == ("reaction", "👍", "3EB0TARGET")


def test_my_own_message_from_another_device_is_from_me() -> None:
    happening = translate(
        message_event(e2e.Message(conversation="sent from the phone"), chat=jid("628999"), from_me=True), NOW
    )
    assert isinstance(happening, Received)
    assert happening.from_me is True
    assert happening.chat == "628999@s.whatsapp.net"


def test_a_missing_timestamp_and_push_name_fall_back() -> None:
    happening = translate(message_event(e2e.Message(conversation="x"), timestamp=0, push_name=""), NOW)
    assert isinstance(happening, Received)
    assert happening.sent_at == NOW
    assert happening.push_name is None


def test_device_plumbing_produces_nothing() -> None:
    key_share = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.APP_STATE_SYNC_KEY_SHARE)
    )
    key_only = e2e.Message(
        senderKeyDistributionMessage=e2e.SenderKeyDistributionMessage(groupID="g"),
        messageContextInfo=e2e.MessageContextInfo(),
    )
    assert translate(message_event(key_share), NOW) is None
    assert translate(message_event(key_only), NOW) is None
    assert translate(message_event(e2e.Message()), NOW) is None
    assert translate(message_event(e2e.Message(conversation="no id"), wa_id=""), NOW) is None


def test_revokes_and_edits_are_their_own_happenings() -> None:
    revoke = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE, key=MessageKey(ID="3EB0OLD"))
    )
    edit = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(
            type=e2e.ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(ID="3EB0OLD"),
            editedMessage=e2e.Message(conversation="fixed typo"),
        )
    )
    assert translate(message_event(revoke), NOW) == Revoked(
        "628123456789@s.whatsapp.net", "3EB0OLD", "628123456789@s.whatsapp.net", SENT
    )
    # The edit has an id of its own (whatsmeow gives every message sent a new one); the
    # message it changes is the one its key names.
    assert translate(message_event(edit, wa_id="3EB0EDIT"), NOW) == Edited(
        "628123456789@s.whatsapp.net", "3EB0OLD", "628123456789@s.whatsapp.net", "fixed typo", SENT
    )
    unwrapped_edit = message_event(e2e.Message(conversation="new text"), is_edit=True)
    assert translate(unwrapped_edit, NOW) == Edited(
        "628123456789@s.whatsapp.net", "3EB0ABC", "628123456789@s.whatsapp.net", "new text", SENT
    )


# -- receipts ---------------------------------------------------------------------------------


def receipt_event(
    kind: int | None, *, from_me: bool = False, chat: JID = ANN, sender: JID = ANN
) -> ev.Receipt:
    receipt = ev.Receipt(
        MessageSource=MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me),
        MessageIDs=["3EB0A", "3EB0B"],
        Timestamp=1_714_563_060,  # seconds, as neonize sends receipts
    )
    if kind is not None:
        receipt.Type = kind
    return receipt


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (ev.Receipt.DELIVERED, "delivered"),
        (ev.Receipt.INACTIVE, "delivered"),
        (ev.Receipt.READ, "read"),
        (ev.Receipt.PLAYED, "played"),
    ],
)
def test_status_receipts_move_statuses(kind: int, status: str) -> None:
    assert translate(receipt_event(kind), NOW) == Receipt(
        chat="628123456789@s.whatsapp.net",
        wa_ids=("3EB0A", "3EB0B"),
        status=status,
        at=datetime(2024, 5, 1, 11, 31, tzinfo=UTC),
        by="628123456789@s.whatsapp.net",
    )


@pytest.mark.parametrize(
    "kind",
    [
        ev.Receipt.SENDER,
        ev.Receipt.RETRY,
        ev.Receipt.READ_SELF,
        ev.Receipt.PLAYED_SELF,
        ev.Receipt.SERVER_ERROR,
        ev.Receipt.PEER_MSG,
        ev.Receipt.HISTORY_SYNC,
        None,  # a whatsmeow type neonize has no mapping for: Type stays unset
    ],
)
def test_receipts_that_are_not_status_moves_produce_nothing(kind: int | None) -> None:
    assert translate(receipt_event(kind), NOW) is None


def test_a_receipt_from_my_own_device_produces_nothing() -> None:
    assert translate(receipt_event(ev.Receipt.READ, from_me=True), NOW) is None


def test_a_group_read_receipt_names_the_reader() -> None:
    receipt = translate(receipt_event(ev.Receipt.READ, chat=GROUP, sender=ANN_LID), NOW)
    assert isinstance(receipt, Receipt)
    assert (receipt.chat, receipt.by, receipt.status) == (
        "120363025246125888@g.us",
        "98765432101234@lid",
        "read",
    )


# -- lifecycle --------------------------------------------------------------------------------


def test_lifecycle_events() -> None:
    assert translate(ev.Connected(status=True), NOW) == LinkOpened()
    assert translate(ev.Disconnected(status=True), NOW) == LinkLost("connection_lost")
    assert translate(ev.StreamReplaced(), NOW) == LinkReplaced("stream_replaced")
    assert translate(ev.LoggedOut(OnConnect=True, Reason=ev.MAIN_DEVICE_GONE), NOW) == LinkLoggedOut(
        "main_device_gone", True
    )
    assert translate(ev.LoggedOut(), NOW) == LinkLoggedOut("logged_out", False)
    assert translate(ev.ClientOutdated(), NOW) == LinkFailed("client_outdated")
    assert translate(ev.ConnectFailure(Reason=ev.BAD_USER_AGENT, Message="nope"), NOW) == LinkFailed(
        "bad_user_agent: nope"
    )


def test_a_temporary_ban_is_dated_from_its_arrival() -> None:
    ban = ev.TemporaryBan(Code=ev.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600)
    assert translate(ban, NOW) == LinkBanned("send_to_too_many_people", NOW + timedelta(hours=1))
    assert translate(ev.TemporaryBan(), NOW) == LinkBanned("temporary_ban", None)


def test_pair_status() -> None:
    success = ev.PairStatus(Status=ev.PairStatus.SUCCESS, ID=ANN, Platform="android", BusinessName="")
    failure = ev.PairStatus(Status=ev.PairStatus.ERROR, Error="bad code")
    assert translate(success, NOW) == PairingSucceeded("628123456789@s.whatsapp.net", "android", None)
    assert translate(failure, NOW) == PairingFailed("bad code")


def test_qr_and_keepalive_events_produce_nothing() -> None:
    assert translate(ev.QR(Codes=["2@abc", "2@def"]), NOW) is None
    assert translate(ev.KeepAliveTimeout(ErrorCount=2), NOW) is None
    assert translate(ev.StreamError(Code="503"), NOW) is None


def test_me_from_the_device() -> None:
    device = ev.Device(JID=jid("628555", device=12), LID=jid("4242", "lid", device=12), PushName="Bot")
    assert me_from_device(device) == Me(jid="628555@s.whatsapp.net", lid="4242@lid", push_name="Bot")
    assert me_from_device(ev.Device(JID=jid("628555"))) == Me("628555@s.whatsapp.net", None, None)
    assert me_from_device(ev.Device()) is None


# -- not deliverable through the port yet -------------------------------------------------------


def test_presence_and_chat_presence() -> None:
    assert translate(ev.Presence(From=ANN, Unavailable=False, LastSeen=1_714_563_000), NOW) == PresenceSeen(
        "628123456789@s.whatsapp.net", True, datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    )
    assert translate(ev.Presence(From=ANN, Unavailable=True, LastSeen=-62135596800), NOW) == PresenceSeen(
        "628123456789@s.whatsapp.net", False, None
    )
    source = MessageSource(Chat=GROUP, Sender=ANN_LID)
    composing = ev.ChatPresence(
        MessageSource=source, State=ev.ChatPresence.COMPOSING, Media=ev.ChatPresence.TEXT
    )
    recording = ev.ChatPresence(
        MessageSource=source, State=ev.ChatPresence.COMPOSING, Media=ev.ChatPresence.AUDIO
    )
    paused = ev.ChatPresence(MessageSource=source, State=ev.ChatPresence.PAUSED)
    chat, sender = "120363025246125888@g.us", "98765432101234@lid"
    assert translate(composing, NOW) == ChatPresenceSeen(chat, sender, "composing")
    assert translate(recording, NOW) == ChatPresenceSeen(chat, sender, "recording")
    assert translate(paused, NOW) == ChatPresenceSeen(chat, sender, "paused")


def test_group_events() -> None:
    info = ev.GroupInfoEvent(
        JID=GROUP,
        Sender=ANN,
        Timestamp=1_714_563_000,
        Name=ev.GroupName(Name="Renamed"),
        Join=[jid("628111"), ANN_LID],
        Leave=[jid("628222")],
        Promote=[jid("628333")],
    )
    assert translate(info, NOW) == GroupChanged(
        group="120363025246125888@g.us",
        by="628123456789@s.whatsapp.net",
        at=datetime(2024, 5, 1, 11, 30, tzinfo=UTC),
        name="Renamed",
        topic=None,
        joined=("628111@s.whatsapp.net", "98765432101234@lid"),
        left=("628222@s.whatsapp.net",),
        promoted=("628333@s.whatsapp.net",),
        demoted=(),
    )
    joined = ev.JoinedGroup(
        Reason="invite", GroupInfo=ev.GroupInfo(JID=GROUP, GroupName=ev.GroupName(Name="Club")), Sender=ANN
    )
    assert translate(joined, NOW) == GroupJoined(
        "120363025246125888@g.us", "Club", "invite", "628123456789@s.whatsapp.net"
    )


def test_call_history_and_undecryptable() -> None:
    call = ev.CallOffer(
        basicCallMeta=ev.BasicCallMeta(callID="CALL1", callCreator=ANN, timestamp=1_714_563_000),
        callRemoteMeta=ev.CallRemoteMeta(remotePlatform="android"),
    )
    assert translate(call, NOW) == IncomingCall(
        "CALL1", "628123456789@s.whatsapp.net", datetime(2024, 5, 1, 11, 30, tzinfo=UTC), "android"
    )
    history = ev.HistorySync(
        Data=HistoryData(
            syncType=HistoryData.RECENT,
            conversations=[Conversation(ID="a"), Conversation(ID="b")],
            progress=40,
        )
    )
    assert translate(history, NOW) == HistorySynced("recent", 2, 40)
    undecryptable = ev.UndecryptableMessage(
        Info=MessageInfo(MessageSource=MessageSource(Chat=ANN, Sender=ANN), ID="3EB0BAD", Timestamp=SENT_MS),
        IsUnavailable=True,
    )
    assert translate(undecryptable, NOW) == Undecryptable(
        "3EB0BAD", "628123456789@s.whatsapp.net", "628123456789@s.whatsapp.net", True, SENT
    )


def test_every_subscribed_event_type_translates() -> None:
    assert ev.Message in EVENT_TYPES and ev.Receipt in EVENT_TYPES and ev.Disconnected in EVENT_TYPES
    assert ev.QR not in EVENT_TYPES  # QR codes come through the qr callback
    for event_type in EVENT_TYPES:
        translate(event_type(), NOW)  # empty events must not raise


# -- JIDs and times ------------------------------------------------------------------------------


def test_jid_strings_both_ways() -> None:
    assert jid_to_str(jid("628123", device=5)) == "628123@s.whatsapp.net"
    assert jid_to_str(JID()) is None
    assert jid_from_str("628123@s.whatsapp.net") == jid("628123")
    assert jid_from_str("120363025246125888@g.us") == GROUP
    assert jid_from_str("98765432101234@lid") == jid("98765432101234", "lid")
    assert jid_from_str("628123:7@s.whatsapp.net") == jid("628123", device=7)
    assert jid_from_str("628123") == jid("628123")


def test_epochs_in_seconds_or_milliseconds() -> None:
    assert from_epoch(SENT_MS, NOW) == SENT
    assert from_epoch(1_714_563_000, NOW) == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert from_epoch(0, NOW) == NOW
