"""Read-side records returned by queries (rows of the read models)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    username: str
    registry: str
    role: str
    disabled: bool
    password_hash: str | None
    api_key_digest: str | None
    key_rotated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    registry: str
    session_id: str
    label: str
    auto_start: bool
    engine: str
    webhook_url: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    me_jid: str | None = None
    me_lid: str | None = None
    push_name: str | None = None
    status_reason: str | None = None
    status_at: datetime | None = None
    last_connected_at: datetime | None = None


class PendingOutbound(msgspec.Struct, frozen=True, kw_only=True):
    """An outbound message recorded as queued and not yet sent or failed."""

    message_id: UUID
    registry: str
    session_id: str
    local_id: str
    chat: str
    text: str | None
    mentions: list[str]
    reply_to: str | None
    position: int


class ChatRecord(msgspec.Struct, frozen=True, kw_only=True):
    jid: str
    kind: str
    name: str | None
    last_message_id: UUID | None
    last_message_at: datetime | None
    last_message_text: str | None
    last_message_from_me: bool | None
    unread_count: int
    pinned: bool
    muted_until: datetime | None
    archived: bool
    read_at: datetime | None
    cleared_at: datetime | None
    updated_at: datetime


class ReactionRecord(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    emoji: str
    at: datetime


class EditRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    previous_text: str | None
    text: str
    actor: str | None
    at: datetime


class StatusRecord(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    at: datetime
    detail: str | None


class MessageRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    chat: str
    wa_id: str
    direction: str
    kind: str
    text: str | None
    sender: str | None
    push_name: str | None
    quoted_id: str | None
    mentions: list[str]
    status: str
    failure: str | None
    edit_count: int
    revoked: bool
    starred: bool
    pinned_until: datetime | None
    deleted: bool
    created_at: datetime
    sent_at: datetime | None
    reactions: list[ReactionRecord] = []
    edits: list[EditRecord] = []
    timeline: list[StatusRecord] = []


class ContactRecord(msgspec.Struct, frozen=True, kw_only=True):
    jid: str
    lid: str | None
    phone: str | None
    push_name: str | None
    business_name: str | None
    last_seen_at: datetime | None


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: resolved from an API key or a docs-session cookie."""

    user_id: UUID
    username: str
    registry: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
