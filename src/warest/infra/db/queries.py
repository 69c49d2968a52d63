"""Query-side adapters over asyncpg: the registry read model and operational tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from warest.app.records import PendingOutbound, SessionRecord, UserRecord

_USER_COLUMNS = (
    "id, username, registry, role, disabled, password_hash, api_key_digest,"
    " key_rotated_at, created_at, updated_at"
)
_SESSION_COLUMNS = (
    "id, registry, session_id, label, auto_start, engine, status, created_at, updated_at,"
    " me_jid, me_lid, push_name, status_reason, status_at, last_connected_at,"
    # The URL of the session's endpoint "primary" (the original's single webhook URL).
    " (SELECT w.url FROM wh_endpoints w WHERE w.session_id = rm_sessions.id AND w.name = 'primary'"
    " AND NOT w.removed) AS webhook_url"
)
AUTOSTART_STATUSES = (
    "created",
    "qr",
    "pairing",
    "connecting",
    "open",
    "reconnecting",
    "suspended",
    "banned",
    "unavailable",
)


def _user(row: Any) -> UserRecord | None:
    return UserRecord(**dict(row)) if row is not None else None


def _session(row: Any) -> SessionRecord | None:
    return SessionRecord(**dict(row)) if row is not None else None


class PgRegistryQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def user_by_id(self, user_id: UUID) -> UserRecord | None:
        return _user(
            await self._pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM rm_users WHERE id = $1", user_id)
        )

    async def user_by_username(self, username: str) -> UserRecord | None:
        return _user(
            await self._pool.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM rm_users WHERE lower(username) = lower($1)", username
            )
        )

    async def user_by_key_digest(self, digest: str) -> UserRecord | None:
        return _user(
            await self._pool.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM rm_users WHERE api_key_digest = $1", digest
            )
        )

    async def users(self) -> list[UserRecord]:
        rows = await self._pool.fetch(f"SELECT {_USER_COLUMNS} FROM rm_users ORDER BY created_at, username")
        return [UserRecord(**dict(r)) for r in rows]

    async def session(self, registry: str, session_id: str) -> SessionRecord | None:
        return _session(
            await self._pool.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM rm_sessions WHERE registry = $1 AND session_id = $2",
                registry,
                session_id,
            )
        )

    async def sessions(self, registry: str) -> list[SessionRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_SESSION_COLUMNS} FROM rm_sessions WHERE registry = $1 ORDER BY session_id", registry
        )
        return [SessionRecord(**dict(r)) for r in rows]


class PgMessagingQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def autostart_sessions(self) -> list[SessionRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_SESSION_COLUMNS} FROM rm_sessions WHERE auto_start AND status = ANY($1::text[])"
            " ORDER BY registry, session_id",
            list(AUTOSTART_STATUSES),
        )
        return [SessionRecord(**dict(r)) for r in rows]

    async def pending_outbound(self, registry: str, session_id: str) -> list[PendingOutbound]:
        rows = await self._pool.fetch(
            "SELECT message_id, registry, session_id, local_id, chat, text, mentions, reply_to, position"
            " FROM rm_pending_outbound WHERE registry = $1 AND session_id = $2 ORDER BY position",
            registry,
            session_id,
        )
        return [PendingOutbound(**{**dict(r), "mentions": list(r["mentions"])}) for r in rows]

    async def message_for_wa_id(self, registry: str, session_id: str, wa_id: str) -> UUID | None:
        value: UUID | None = await self._pool.fetchval(
            "SELECT message_id FROM rm_message_index WHERE registry = $1 AND session_id = $2 AND wa_id = $3",
            registry,
            session_id,
            wa_id,
        )
        return value


class PgLoginGuardStore:
    """Failure counts restart after a day without failures."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def locked_until(self, username: str, address: str) -> datetime | None:
        value: datetime | None = await self._pool.fetchval(
            "SELECT locked_until FROM login_failures WHERE username = $1 AND address = $2",
            username,
            address,
        )
        return value

    async def record_failure(self, username: str, address: str, now: datetime) -> int:
        count: int = await self._pool.fetchval(
            "INSERT INTO login_failures (username, address, failures, last_failure)"
            " VALUES ($1, $2, 1, $3) ON CONFLICT (username, address) DO UPDATE SET"
            " failures = CASE WHEN login_failures.last_failure < $3 - interval '1 day'"
            " THEN 1 ELSE login_failures.failures + 1 END, last_failure = $3"
            " RETURNING failures",
            username,
            address,
            now,
        )
        return count

    async def lock(self, username: str, address: str, until: datetime) -> None:
        await self._pool.execute(
            "UPDATE login_failures SET locked_until = $3 WHERE username = $1 AND address = $2",
            username,
            address,
            until,
        )

    async def clear(self, username: str, address: str) -> None:
        await self._pool.execute(
            "DELETE FROM login_failures WHERE username = $1 AND address = $2", username, address
        )


class PgAuthSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, token_digest: str, user_id: UUID, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO auth_sessions (token_digest, user_id, expires_at) VALUES ($1, $2, $3)",
            token_digest,
            user_id,
            expires_at,
        )

    async def user_id(self, token_digest: str, now: datetime) -> UUID | None:
        value: UUID | None = await self._pool.fetchval(
            "SELECT user_id FROM auth_sessions WHERE token_digest = $1"
            " AND revoked_at IS NULL AND expires_at > $2",
            token_digest,
            now,
        )
        return value

    async def revoke(self, token_digest: str, now: datetime) -> None:
        await self._pool.execute(
            "UPDATE auth_sessions SET revoked_at = $2 WHERE token_digest = $1 AND revoked_at IS NULL",
            token_digest,
            now,
        )


async def database_ok(pool: asyncpg.Pool) -> bool:
    try:
        return bool(await pool.fetchval("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
