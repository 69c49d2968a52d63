"""neonize events → what the engine port can say about them. Pure: no I/O, no clock.

``translate(event, received_at)`` turns one neonize protobuf event into one value (see
``happenings``): one of the port's happenings (``Received``, ``Receipt``, ``Edited``,
``Revoked``), a link signal the connection acts on, or a dataclass for things the port
cannot deliver yet (presence, groups, calls, history) which the connection logs and drops.
``None`` means "nothing to tell".
``received_at`` stands in for timestamps neonize leaves unset, and dates temporary bans.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from neonize.proto import Neonize_pb2 as ev

from warest.app.happenings import Edited, Me, Receipt, Received, Revoked
from warest.infra.engines.neonize.content import is_envelope_only, read_content, unwrap
from warest.infra.engines.neonize.happenings import (
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
    Translated,
    Undecryptable,
)
from warest.infra.engines.neonize.jids import from_epoch, jid_to_str, jids_to_str, maybe_epoch

__all__ = [
    "EVENT_TYPES",
    "ChatPresenceSeen",
    "GroupChanged",
    "GroupJoined",
    "HistorySynced",
    "IncomingCall",
    "LinkBanned",
    "LinkFailed",
    "LinkLoggedOut",
    "LinkLost",
    "LinkOpened",
    "LinkReplaced",
    "PairingFailed",
    "PairingSucceeded",
    "PresenceSeen",
    "Translated",
    "Undecryptable",
    "me_from_device",
    "translate",
    "translate_message",
    "translate_receipt",
]

# whatsmeow receipt types that move an outbound message's status. The rest are dropped:
# SENDER (our other device got our own message), RETRY (decryption retry request), READ_SELF
# and PLAYED_SELF (we read something on another device), PEER_MSG and HISTORY_SYNC
# (device-to-device traffic), SERVER_ERROR (neonize also reports played-self as this).
# INACTIVE means the message reached a device of a user who is not active: a delivery.
_RECEIPT_STATUS = {
    ev.Receipt.DELIVERED: "delivered",
    ev.Receipt.INACTIVE: "delivered",
    ev.Receipt.READ: "read",
    ev.Receipt.PLAYED: "played",
}


def translate(event: Any, received_at: datetime) -> Translated | None:
    """The happening for one neonize event, or None when there is nothing to tell."""
    handler = _HANDLERS.get(type(event))
    return handler(event, received_at) if handler is not None else None


def translate_message(event: ev.Message, received_at: datetime) -> Received | Edited | Revoked | None:
    info = event.Info
    source = info.MessageSource
    chat = jid_to_str(source.Chat)
    sender = jid_to_str(source.Sender) or chat
    if not info.ID or chat is None or sender is None:
        return None
    at = from_epoch(info.Timestamp, received_at)
    body = unwrap(event.Message)
    if body.HasField("protocolMessage"):
        protocol = body.protocolMessage
        if protocol.type == protocol.REVOKE and protocol.key.ID:
            return Revoked(chat, protocol.key.ID, sender, at)
        if protocol.type == protocol.MESSAGE_EDIT and protocol.HasField("editedMessage"):
            # The edit travels as a message of its own (a new id); its key names the target.
            target = protocol.key.ID or info.ID
            return Edited(chat, target, sender, read_content(unwrap(protocol.editedMessage)).text or "", at)
        return None  # key shares, history notifications, ephemeral settings: device plumbing
    if is_envelope_only(body):
        return None
    content = read_content(body)
    if event.IsEdit:
        return Edited(chat, info.ID, sender, content.text or "", at)
    return Received(
        wa_id=info.ID,
        chat=chat,
        sender=sender,
        from_me=source.IsFromMe,
        kind=content.kind,
        text=content.text,
        push_name=info.Pushname or None,
        mentions=content.mentions,
        quoted_id=content.quoted_id,
        sent_at=at,
    )


def translate_receipt(event: ev.Receipt, received_at: datetime) -> Receipt | None:
    source = event.MessageSource
    chat = jid_to_str(source.Chat)
    # An unset Type reads as DELIVERED (proto2 default): it means neonize had no mapping.
    status = _RECEIPT_STATUS.get(event.Type) if event.HasField("Type") else None
    if status is None or chat is None or source.IsFromMe or not event.MessageIDs:
        return None
    return Receipt(
        chat=chat,
        wa_ids=tuple(event.MessageIDs),
        status=status,
        at=from_epoch(event.Timestamp, received_at),
        by=jid_to_str(source.Sender),
    )


def me_from_device(device: ev.Device) -> Me | None:
    """Who the logged-in device is (from get_me), or None before a login."""
    jid = jid_to_str(device.JID)
    if jid is None:
        return None
    return Me(jid=jid, lid=jid_to_str(device.LID), push_name=device.PushName or None)


def _failure_name(reason: int) -> str:
    return str(ev.ConnectFailureReason.Name(reason)).lower()


def _logged_out(event: ev.LoggedOut, _: datetime) -> LinkLoggedOut:
    reason = _failure_name(event.Reason) if event.HasField("Reason") else "logged_out"
    return LinkLoggedOut(reason, event.OnConnect)


def _banned(event: ev.TemporaryBan, received_at: datetime) -> LinkBanned:
    reason = str(ev.TemporaryBan.TempBanReason.Name(event.Code)).lower() if event.HasField("Code") else ""
    until = received_at + timedelta(seconds=event.Expire) if event.Expire > 0 else None
    return LinkBanned(reason or "temporary_ban", until)


def _connect_failure(event: ev.ConnectFailure, _: datetime) -> LinkFailed:
    reason = _failure_name(event.Reason) if event.HasField("Reason") else "connect_failure"
    return LinkFailed(f"{reason}: {event.Message}" if event.Message else reason)


def _pair_status(event: ev.PairStatus, _: datetime) -> PairingSucceeded | PairingFailed:
    if event.Status == ev.PairStatus.ERROR:
        return PairingFailed(event.Error or "pairing failed")
    return PairingSucceeded(jid_to_str(event.ID), event.Platform or None, event.BusinessName or None)


def _presence(event: ev.Presence, _: datetime) -> PresenceSeen | None:
    jid = jid_to_str(event.From)
    return PresenceSeen(jid, not event.Unavailable, maybe_epoch(event.LastSeen)) if jid else None


def _chat_presence(event: ev.ChatPresence, _: datetime) -> ChatPresenceSeen | None:
    chat = jid_to_str(event.MessageSource.Chat)
    if chat is None:
        return None
    if event.State == ev.ChatPresence.PAUSED:
        state = "paused"
    else:
        state = "recording" if event.Media == ev.ChatPresence.AUDIO else "composing"
    return ChatPresenceSeen(chat, jid_to_str(event.MessageSource.Sender), state)


def _group_info(event: ev.GroupInfoEvent, received_at: datetime) -> GroupChanged | None:
    group = jid_to_str(event.JID)
    if group is None:
        return None
    return GroupChanged(
        group=group,
        by=jid_to_str(event.Sender),
        at=from_epoch(event.Timestamp, received_at),
        name=(event.Name.Name or None) if event.HasField("Name") else None,
        topic=(event.Topic.Topic or None) if event.HasField("Topic") else None,
        joined=jids_to_str(event.Join),
        left=jids_to_str(event.Leave),
        promoted=jids_to_str(event.Promote),
        demoted=jids_to_str(event.Demote),
    )


def _joined_group(event: ev.JoinedGroup, _: datetime) -> GroupJoined | None:
    group = jid_to_str(event.GroupInfo.JID)
    if group is None:
        return None
    name = event.GroupInfo.GroupName.Name or None
    return GroupJoined(group, name, event.Reason or None, jid_to_str(event.Sender))


def _call_offer(event: ev.CallOffer, received_at: datetime) -> IncomingCall:
    meta = event.basicCallMeta
    return IncomingCall(
        call_id=meta.callID,
        caller=jid_to_str(meta.callCreator),
        at=from_epoch(meta.timestamp, received_at),
        platform=event.callRemoteMeta.remotePlatform or None,
    )


def _history_sync(event: ev.HistorySync, _: datetime) -> HistorySynced:
    data = event.Data
    sync_type = str(data.HistorySyncType.Name(data.syncType)).lower()
    progress = int(data.progress) if data.HasField("progress") else None
    return HistorySynced(sync_type, len(data.conversations), progress)


def _undecryptable(event: ev.UndecryptableMessage, received_at: datetime) -> Undecryptable:
    info = event.Info
    return Undecryptable(
        wa_id=info.ID,
        chat=jid_to_str(info.MessageSource.Chat),
        sender=jid_to_str(info.MessageSource.Sender),
        unavailable=event.IsUnavailable,
        at=from_epoch(info.Timestamp, received_at),
    )


_HANDLERS: dict[type[Any], Callable[[Any, datetime], Translated | None]] = {
    ev.Message: translate_message,
    ev.Receipt: translate_receipt,
    ev.Connected: lambda _e, _t: LinkOpened(),
    # Only unexpected drops are reported by whatsmeow (not our own disconnects).
    ev.Disconnected: lambda _e, _t: LinkLost("connection_lost"),
    ev.LoggedOut: _logged_out,
    ev.StreamReplaced: lambda _e, _t: LinkReplaced(),
    ev.TemporaryBan: _banned,
    ev.ConnectFailure: _connect_failure,
    ev.ClientOutdated: lambda _e, _t: LinkFailed("client_outdated"),
    ev.PairStatus: _pair_status,
    ev.Presence: _presence,
    ev.ChatPresence: _chat_presence,
    ev.GroupInfoEvent: _group_info,
    ev.JoinedGroup: _joined_group,
    ev.CallOffer: _call_offer,
    ev.HistorySync: _history_sync,
    ev.UndecryptableMessage: _undecryptable,
    # Deliberately absent (translate returns None): QR (codes arrive through the client's
    # qr callback, one at a time, which is what the listener needs), KeepAliveTimeout /
    # KeepAliveRestored / StreamError (whatsmeow recovers by itself and reports Disconnected
    # or LoggedOut when it cannot), OfflineSync*, Picture, IdentityChange, Blocklist*,
    # Newsletter*, other call events, privacy settings: nothing the port can carry.
}

EVENT_TYPES: tuple[type[Any], ...] = tuple(_HANDLERS)
"""The neonize event classes the connection subscribes to."""
