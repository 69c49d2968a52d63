"""``/api/v1/chats`` and ``/api/v1/contacts``: the caller's conversations, from read models."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from warest.api.codes import Code
from warest.api.dependencies import Actions, AppSettings, Reads
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.params import (
    MESSAGE_ID_MAX,
    NAME_MAX,
    SEARCH_MAX,
    Body,
    invalid,
    offset_param,
    page_limit,
    session_param,
    text_param,
)
from warest.app.readside import MAX_LIMIT, MessageFilter
from warest.app.records import ChatRecord, ContactRecord, MessageRecord, Principal
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid
from warest.domain.text import is_safe


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def chat_view(chat: ChatRecord) -> dict[str, Any]:
    return {
        "id": chat.jid,
        "jid": chat.jid,
        "kind": chat.kind,
        "isGroup": chat.kind == "group",
        "name": chat.name,
        "displayName": chat.name or chat.jid.split("@", 1)[0],
        "unreadCount": chat.unread_count,
        "lastMessage": {
            "text": chat.last_message_text,
            "fromMe": chat.last_message_from_me,
            "at": _iso(chat.last_message_at),
        }
        if chat.last_message_id
        else None,
        "lastMessageTimestamp": int(chat.last_message_at.timestamp()) if chat.last_message_at else None,
        "pinned": chat.pinned,
        "mutedUntil": _iso(chat.muted_until),
        "archived": chat.archived,
        "readAt": _iso(chat.read_at),
        "clearedAt": _iso(chat.cleared_at),
        "updatedAt": chat.updated_at.isoformat(),
    }


def message_view(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.wa_id,
        "messageId": message.wa_id,
        "chatId": message.chat,
        "direction": message.direction,
        "fromMe": message.direction == "out",
        "type": message.kind,
        "text": None if message.revoked else message.text,
        "sender": message.sender,
        "pushName": message.push_name,
        "quotedMessageId": message.quoted_id,
        "mentions": message.mentions,
        "status": message.status,
        "failure": message.failure,
        "isEdited": message.edit_count > 0,
        "revoked": message.revoked,
        "starred": message.starred,
        "pinnedUntil": _iso(message.pinned_until),
        "timestamp": message.created_at.isoformat(),
        "sentAt": _iso(message.sent_at),
        "reactions": [{"from": r.actor, "emoji": r.emoji, "at": r.at.isoformat()} for r in message.reactions],
        "edits": [
            {
                "seq": e.seq,
                "previousText": e.previous_text,
                "text": e.text,
                "by": e.actor,
                "at": e.at.isoformat(),
            }
            for e in message.edits
        ],
        "timeline": [
            {"status": t.status, "at": t.at.isoformat(), "detail": t.detail} for t in message.timeline
        ],
    }


def contact_view(contact: ContactRecord) -> dict[str, Any]:
    return {
        "jid": contact.jid,
        "lid": contact.lid,
        "phone": contact.phone,
        "pushName": contact.push_name,
        "businessName": contact.business_name,
        "lastSeenAt": _iso(contact.last_seen_at),
    }


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        raise invalid("cursor", "is not a cursor returned by this API", source="query") from None
    if len(parts) != size or not all(is_safe(part) for part in parts):
        raise invalid("cursor", "is not a cursor returned by this API", source="query")
    return parts


def parse_time(field: str, raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        if raw.isascii() and raw.isdigit():
            value = int(raw)
            return datetime.fromtimestamp(value / 1000 if value > 10**11 else value).astimezone()
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone()
    except (ValueError, OverflowError, OSError):  # OSError: beyond what the C library converts
        raise invalid(
            field, "must be an ISO-8601 time or unix seconds/milliseconds", source="query"
        ) from None


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def chat_jid(raw: str, country_code: str, field: str = "chatId") -> str:
    try:
        return str(Jid.parse(raw, country_code, field))
    except InvalidValue as error:
        raise invalid(field, error.reason, source="path") from None


def _bool(field: str, raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    low = raw.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise invalid(field, "must be true or false", source="query")


SessionQuery = Annotated[str | None, QueryParameter(name="sessionId")]
FromMeQuery = Annotated[str | None, QueryParameter(name="fromMe")]
TypeQuery = Annotated[str | None, QueryParameter(name="type")]


class ChatBody(Body, kw_only=True):
    limits = {"sessionId": NAME_MAX, "duration": NAME_MAX, "messages": MESSAGE_ID_MAX}

    sessionId: str | None = None  # noqa: N815
    pin: bool | None = None
    duration: str | None = None
    messages: list[str] | None = None


class ChatsController(Controller):
    path = "/api/v1/chats"
    tags = ["chats"]

    @get("/")
    async def list_chats(
        self,
        request: Request[Principal, Any, Any],
        reads: Reads,
        session_id: SessionQuery = None,
        limit: FromQuery[int] = 20,
        cursor: FromQuery[str | None] = None,
        search: FromQuery[str | None] = None,
        archived: FromQuery[str | None] = None,
    ) -> Response[Envelope]:
        """Chats newest first (pinned on top); page with the returned ``nextCursor``."""
        name = session_param(session_id)
        limit = page_limit(limit, MAX_LIMIT)
        search = text_param(search, "search", max_length=SEARCH_MAX)
        before = None
        if cursor:
            at, jid = decode_cursor(cursor, 2)
            before = (parse_time("cursor", at) if at else None, jid)
        chats = await reads.chats(request.user, name, limit, before, search, _bool("archived", archived))
        last = chats[-1] if len(chats) == limit else None
        next_cursor = encode_cursor(_iso(last.last_message_at) or "", last.jid) if last else None
        return envelope(
            Code.SUCCESS,
            "Chats list fetched",
            {"sessionId": name, "items": [chat_view(c) for c in chats], "nextCursor": next_cursor},
        )

    @get("/{chat_id:str}/messages")
    async def messages(
        self,
        request: Request[Principal, Any, Any],
        reads: Reads,
        settings: AppSettings,
        chat_id: FromPath[str],
        session_id: SessionQuery = None,
        limit: FromQuery[int] = 20,
        cursor: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        kind: TypeQuery = None,
        from_me: FromMeQuery = None,
        search: FromQuery[str | None] = None,
        starred: FromQuery[str | None] = None,
    ) -> Response[Envelope]:
        """A chat's messages newest first, with reactions, edits and the status timeline."""
        name = session_param(session_id)
        limit = page_limit(limit, MAX_LIMIT)
        chat = chat_jid(chat_id, settings.default_country_code)
        filters = MessageFilter(
            since=parse_time("since", since),
            until=parse_time("until", until),
            kind=text_param(kind, "type", max_length=NAME_MAX),
            from_me=_bool("fromMe", from_me),
            search=text_param(search, "search", max_length=SEARCH_MAX),
            starred=_bool("starred", starred),
        )
        before = None
        if cursor:
            at, message_id = decode_cursor(cursor, 2)
            when = parse_time("cursor", at)
            if when is None or not _is_uuid(message_id):
                raise invalid("cursor", "is not a cursor returned by this API", source="query")
            before = (when, message_id)
        items = await reads.messages(request.user, name, chat, limit, before, filters)
        info = await reads.chat(request.user, name, chat)
        last = items[-1] if len(items) == limit else None
        next_cursor = encode_cursor(last.created_at.isoformat(), str(last.id)) if last else None
        return envelope(
            Code.SUCCESS,
            "Messages fetched",
            {
                "sessionId": name,
                "chatId": chat,
                "chatInfo": chat_view(info) if info else None,
                "items": [message_view(m) for m in items],
                "nextCursor": next_cursor,
            },
        )

    @post("/{chat_id:str}/read", status_code=200)
    async def read(
        self,
        request: Request[Principal, Any, Any],
        reads: Reads,
        actions: Actions,
        settings: AppSettings,
        chat_id: FromPath[str],
        data: JSONBody[ChatBody],
    ) -> Response[Envelope]:
        """Sends read receipts for the chat's unread received messages (or ``messages``)."""
        name = session_param(data.sessionId or request.query_params.get("sessionId"))
        chat = chat_jid(chat_id, settings.default_country_code)
        wa_ids = data.messages or await reads.unread(request.user, name, chat, 500)
        marked = await actions.mark_read(request.user, name, Jid.parse(chat), wa_ids)
        return envelope(
            Code.SUCCESS,
            "Chat marked as read",
            {"sessionId": name, "chatId": chat, "totalMarked": len(marked), "marked": marked},
        )

    @post("/{chat_id:str}/pin", status_code=200)
    async def pin_chat(
        self,
        request: Request[Principal, Any, Any],
        actions: Actions,
        settings: AppSettings,
        chat_id: FromPath[str],
        data: JSONBody[ChatBody],
    ) -> Response[Envelope]:
        name = session_param(data.sessionId or request.query_params.get("sessionId"))
        if data.pin is None:
            raise invalid("pin", "is required (true or false)", source="body")
        chat = chat_jid(chat_id, settings.default_country_code)
        pinned = bool(data.pin)
        await actions.chat_action(request.user, name, Jid.parse(chat), lambda c: c.pin(pinned))
        return envelope(
            Code.SUCCESS,
            "Chat pinned" if pinned else "Chat unpinned",
            {"sessionId": name, "chatId": chat, "pinned": pinned},
        )

    @post("/{chat_id:str}/messages/{message_id:str}/pin", status_code=200)
    async def pin_message(
        self,
        request: Request[Principal, Any, Any],
        actions: Actions,
        settings: AppSettings,
        chat_id: FromPath[str],
        message_id: FromPath[str],
        data: JSONBody[ChatBody],
    ) -> Response[Envelope]:
        name = session_param(data.sessionId or request.query_params.get("sessionId"))
        if data.pin is None:
            raise invalid("pin", "is required (true or false)", source="body")
        chat = chat_jid(chat_id, settings.default_country_code)
        duration = (data.duration or "7d") if data.pin else None
        message = await actions.pin(request.user, name, message_id, duration)
        if message.chat != chat:
            raise ApiError(Code.NOT_FOUND, f"message '{message_id}' not found in {chat}")
        return envelope(
            Code.SUCCESS,
            "Message pinned" if data.pin else "Message unpinned",
            {
                "sessionId": name,
                "chatId": chat,
                "messageId": message_id,
                "pinned": bool(data.pin),
                "pinnedUntil": _iso(message.pinned_until),
            },
        )


class ContactsController(Controller):
    path = "/api/v1/contacts"
    tags = ["chats"]

    @get("/")
    async def list_contacts(
        self,
        request: Request[Principal, Any, Any],
        reads: Reads,
        session_id: SessionQuery = None,
        limit: FromQuery[int] = 100,
        offset: FromQuery[int] = 0,
    ) -> Response[Envelope]:
        name = session_param(session_id)
        limit, offset = page_limit(limit, MAX_LIMIT), offset_param(offset)
        contacts = await reads.contacts(request.user, name, limit, offset)
        return envelope(
            Code.SUCCESS,
            f"{len(contacts)} contacts",
            {"sessionId": name, "items": [contact_view(c) for c in contacts]},
        )
