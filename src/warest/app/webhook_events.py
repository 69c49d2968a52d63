"""What a domain event looks like to a webhook receiver: its name, its ``data`` and its body.

The body is the original's ``{"event", "data", "ts", "session"}`` (compact JSON, keys in
that order). ``data`` carries the original's fields plus ``eventId`` (stable per event:
the same across retries, redeliveries and replays) and ``sequence`` (the per-session
sequence number of webhook events, so a receiver can detect a gap or a reorder).

The body is rendered once, when the event enters the outbox, and stored: every attempt
sends the same bytes, so a signature over the body is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import msgspec

from warest.domain import ids
from warest.domain.messages import Message
from warest.domain.model import DomainEvent
from warest.domain.sessions import LIFECYCLE_EVENTS, Session

_encoder = msgspec.json.Encoder()
COMMAND_PREFIXES = ("/", "!", ".")
_EVENT_NS = uuid5(ids.NAMESPACE, "webhook-event")


@dataclass(frozen=True)
class SessionInfo:
    """What the body's ``session`` object and the ``X-WAREST-*`` headers say of a session."""

    id: UUID
    name: str
    registry: str
    label: str
    username: str | None


@dataclass(frozen=True)
class MessageInfo:
    """The message a reaction, an edit or a revocation is about."""

    registry: str
    session: str
    chat: str
    wa_id: str
    from_me: bool


def event_id(originator_id: UUID, version: int) -> str:
    """A stable id for one event of the log (the event store's identity of it)."""
    return "evt_" + uuid5(_EVENT_NS, f"{originator_id}:{version}").hex


def delivery_id(endpoint_id: UUID, event: str) -> str:
    """The Standard Webhooks ``webhook-id`` of one event to one endpoint (stable across
    retries, redeliveries and replays)."""
    return "msg_" + uuid5(endpoint_id, event).hex


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def render_body(name: str, data: dict[str, Any], ts_ms: int, session: SessionInfo) -> bytes:
    body = {
        "event": name,
        "data": data,
        "ts": ts_ms,
        "session": {
            "id": session.name,
            "label": session.label,
            "registry": session.registry,
            "username": session.username,
        },
    }
    return _encoder.encode(body)


# -- session lifecycle ---------------------------------------------------------------


def _session_status(event: Any) -> dict[str, Any] | None:
    match event:
        case Session.Created():
            return {"tags": "create"}
        case Session.Deleted():
            return {"tags": "delete", "status": "deleted"}
        case Session.QrIssued():
            # The QR string is not in the log: the outbox fills ``qr`` in (``with_qr``).
            return {"tags": "qr", "qr": None, "qrDuration": event.duration_s, "attempt": event.attempt}
        case Session.PairingCodeIssued():
            # The code is not in the log either: the outbox fills ``pairingCode`` in.
            return {"tags": "pairing_code", "pairingCode": None, "phone": event.phone}
        case Session.ConnectionStarted():
            return {"tags": "connecting", "status": "connecting"}
        case Session.Opened():
            return {
                "tags": "open",
                "status": "open",
                "me": {"id": event.jid, "lid": event.lid, "name": event.push_name},
            }
        case Session.ConnectionLost():
            return {
                "tags": "reconnecting",
                "status": "reconnecting",
                "attempts": event.attempt,
                "reason": event.reason,
            }
        case Session.Suspended():
            return {
                "tags": "suspended",
                "status": "suspended",
                "reason": event.reason,
                "since": event.since.isoformat(),
            }
        case Session.LoggedOut():
            return {"tags": "logged_out", "status": "logged_out", "reason": event.reason}
        case Session.Replaced():
            return {"tags": "conflict_replaced", "status": "replaced", "reason": event.reason}
        case Session.Closed():
            return {"tags": "close", "status": "closed", "reason": event.reason}
        case Session.Banned():
            until = event.until.isoformat() if event.until else None
            return {"tags": "banned", "status": "banned", "reason": event.reason, "until": until}
        case Session.StartDeferred():
            return {"tags": "unavailable", "status": "unavailable", "reason": event.reason}
    return None


def with_qr(data: dict[str, Any], qr: str | None) -> dict[str, Any]:
    """The ``session_status`` data of a ``Session.QrIssued`` with the QR string it showed
    (``None`` when it was replaced before the outbox rendered it: it is useless by then)."""
    return {**data, "qr": qr}


def with_pairing_code(data: dict[str, Any], code: str | None) -> dict[str, Any]:
    """The ``session_status`` data of a ``Session.PairingCodeIssued`` with the code it
    announced (``None`` when a newer code replaced it before the outbox rendered it)."""
    return {**data, "pairingCode": code}


MESSAGE_FOLLOW_UPS: tuple[type[DomainEvent], ...] = (
    Message.Reacted,
    Message.ReactionRemoved,
    Message.Edited,
    Message.Revoked,
)

# -- messages --------------------------------------------------------------------------

_TAGS = {
    "text": "text",
    "image": "media",
    "video": "media",
    "document": "file",
    "audio": "audio",
    "sticker": "sticker",
    "location": "location",
    "contact": "contact",
    "contacts": "contacts",
    "poll": "poll",
}


def _content_type(kind: str) -> str:
    return "conversation" if kind == "text" else f"{kind}Message"


def _key(info: MessageInfo) -> dict[str, Any]:
    return {"remoteJid": info.chat, "fromMe": info.from_me, "id": info.wa_id}


def _is_group(chat: str) -> bool:
    return chat.endswith("@g.us")


def _received(event: Message.Received, prefixes: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    if event.from_me:
        return None  # the original does not report the account's own messages
    text = event.text or ""
    group = _is_group(event.chat)
    key: dict[str, Any] = {"remoteJid": event.chat, "fromMe": False, "id": event.wa_id}
    if group:
        key["participant"] = event.sender
    sent_at = event.sent_at or event.timestamp
    data: dict[str, Any] = {
        "tags": _TAGS.get(event.kind, event.kind),
        "message": {"key": key, "pushName": event.push_name, "messageTimestamp": int(sent_at.timestamp())},
        "text": text,
        "contentType": _content_type(event.kind),
        "sender": {"chatId": event.chat, "fromMe": False, "isGroup": group, "authorJid": event.sender},
        "mentions": list(event.mentions),
        "type": "notify",
    }
    if event.quoted_id:
        data["quoted"] = {"id": event.quoted_id}
    command = _command(text, prefixes) if event.kind == "text" else None
    if command is not None:
        data["command"], data["args"] = command
        return "message_command", data
    return "message_received", data


def _command(text: str, prefixes: Sequence[str]) -> tuple[str, list[str]] | None:
    stripped = text.strip()
    for prefix in prefixes:
        if prefix and stripped.startswith(prefix) and len(stripped) > len(prefix):
            words = stripped[len(prefix) :].split()
            if words:
                return words[0].lower(), words[1:]
    return None


def _follow_up(event: Any, info: MessageInfo) -> tuple[str, dict[str, Any]] | None:
    key = _key(info)
    match event:
        case Message.Reacted() | Message.ReactionRemoved():
            # The original reports a removed reaction as one with an empty text.
            reaction = {
                "text": event.emoji if isinstance(event, Message.Reacted) else "",
                "key": key,
                "sender": event.by,
                "senderTimestampMs": epoch_ms(event.at),
            }
            return "message_reaction", {
                "key": key,
                "reaction": reaction,
                "sender": {"chatId": info.chat, "authorJid": event.by, "isGroup": _is_group(info.chat)},
            }
        case Message.Edited():
            return "message_edited", {
                "key": key,
                "editedMessage": {"conversation": event.text},
                "text": event.text,
                "by": event.by,
                "editedAt": epoch_ms(event.at),
                "mentions": [],
            }
        case Message.Revoked():
            return "message_revoked", {"key": key, "by": event.by, "revokedAt": epoch_ms(event.at)}
    return None


class Renderer:
    """Turns a domain event into ``(name, data)``, or ``None`` when receivers are not told."""

    def __init__(self, command_prefixes: Sequence[str] = COMMAND_PREFIXES) -> None:
        self._prefixes = tuple(command_prefixes)

    def render(
        self, event: Any, message: Callable[[UUID], MessageInfo | None]
    ) -> tuple[str, dict[str, Any]] | None:
        if isinstance(event, LIFECYCLE_EVENTS):
            data = _session_status(event)
            return ("session_status", data) if data is not None else None
        if isinstance(event, Message.Received):
            return _received(event, self._prefixes)
        if isinstance(event, MESSAGE_FOLLOW_UPS):
            info = message(event.originator_id)
            return _follow_up(event, info) if info is not None else None
        return None


def finish_data(data: dict[str, Any], session: str, event: str, sequence: int) -> dict[str, Any]:
    """The fields every payload carries (``id``/``sessionId`` as the original)."""
    return {"id": session, **data, "sessionId": session, "eventId": event, "sequence": sequence}
