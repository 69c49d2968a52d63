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


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: resolved from an API key or a docs-session cookie."""

    user_id: UUID
    username: str
    registry: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
