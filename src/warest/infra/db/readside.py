"""asyncpg queries over rm_chats, rm_messages (+ reactions, edits, timeline), rm_contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from warest.app.readside import MessageFilter
from warest.app.records import (
    ChatRecord,
    ContactRecord,
    EditRecord,
    MessageRecord,
    ReactionRecord,
    StatusRecord,
)

_CHAT = (
    "jid, kind, name, last_message_id, last_message_at, last_message_text, last_message_from_me,"
    " unread_count, pinned, muted_until, archived, read_at, cleared_at, updated_at"
)
_MESSAGE = (
    "id, chat, wa_id, direction, kind, text, sender, push_name, quoted_id, mentions, status, failure,"
    " edit_count, revoked, starred, pinned_until, deleted, created_at, sent_at"
)


class PgReadQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def chats(
        self,
        registry: str,
        session: str,
        limit: int,
        before: tuple[datetime | None, str] | None,
        search: str | None,
        archived: bool | None,
    ) -> list[ChatRecord]:
        args: list[Any] = [registry, session]
        where = ["registry = $1", "session_id = $2"]
        if search:
            args.append(f"%{_escape(search)}%")
            where.append(f"(jid ILIKE ${len(args)} OR name ILIKE ${len(args)})")
        if archived is not None:
            args.append(archived)
            where.append(f"archived = ${len(args)}")
        if before is not None:
            at, jid = before
            args += [at, jid]
            a, j = len(args) - 1, len(args)
            where.append(
                f"(COALESCE(last_message_at, '-infinity') < COALESCE(${a}::timestamptz, '-infinity')"
                f" OR (COALESCE(last_message_at, '-infinity') = COALESCE(${a}::timestamptz, '-infinity')"
                f" AND jid > ${j}))"
            )
        args.append(limit)
        rows = await self._pool.fetch(
            f"SELECT {_CHAT} FROM rm_chats WHERE {' AND '.join(where)}"
            f" ORDER BY pinned DESC, last_message_at DESC NULLS LAST, jid LIMIT ${len(args)}",
            *args,
        )
        return [ChatRecord(**dict(r)) for r in rows]

    async def chat(self, registry: str, session: str, jid: str) -> ChatRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_CHAT} FROM rm_chats WHERE registry = $1 AND session_id = $2 AND jid = $3",
            registry,
            session,
            jid,
        )
        return ChatRecord(**dict(row)) if row else None

    async def messages(
        self,
        registry: str,
        session: str,
        chat: str,
        limit: int,
        before: tuple[datetime, str] | None,
        filters: MessageFilter,
        cleared_at: datetime | None,
    ) -> list[MessageRecord]:
        args: list[Any] = [registry, session, chat]
        where = ["registry = $1", "session_id = $2", "chat = $3", "NOT deleted"]

        def add(condition: str, value: Any) -> None:
            args.append(value)
            where.append(condition.replace("?", f"${len(args)}"))

        if cleared_at is not None:
            add("created_at > ?", cleared_at)
        if filters.since is not None:
            add("created_at >= ?", filters.since)
        if filters.until is not None:
            add("created_at < ?", filters.until)
        if filters.kind:
            add("kind = ?", filters.kind)
        if filters.from_me is not None:
            add("(direction = 'out') = ?", filters.from_me)
        if filters.starred is not None:
            add("starred = ?", filters.starred)
        if filters.search:
            add("text ILIKE ?", f"%{_escape(filters.search)}%")
        if before is not None:
            args += [before[0], UUID(before[1])]
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE} FROM rm_messages WHERE {' AND '.join(where)}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
        ids = [r["id"] for r in rows]
        reactions = await self._grouped(
            "SELECT message_id, actor, emoji, at FROM rm_message_reactions WHERE message_id = ANY($1)"
            " ORDER BY at",
            ids,
        )
        edits = await self._grouped(
            "SELECT message_id, seq, previous_text, text, actor, at FROM rm_message_edits"
            " WHERE message_id = ANY($1) ORDER BY seq",
            ids,
        )
        timeline = await self._grouped(
            "SELECT message_id, status, at, detail FROM rm_message_status WHERE message_id = ANY($1)"
            " ORDER BY position",
            ids,
        )
        return [
            MessageRecord(
                **{**dict(r), "mentions": list(r["mentions"])},
                reactions=[ReactionRecord(**x) for x in reactions.get(r["id"], [])],
                edits=[EditRecord(**x) for x in edits.get(r["id"], [])],
                timeline=[StatusRecord(**x) for x in timeline.get(r["id"], [])],
            )
            for r in rows
        ]

    async def _grouped(self, sql: str, ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
        out: dict[UUID, list[dict[str, Any]]] = {}
        if not ids:
            return out
        for row in await self._pool.fetch(sql, ids):
            item = dict(row)
            key = item.pop("message_id")
            out.setdefault(key, []).append(item)
        return out

    async def unread_inbound(
        self, registry: str, session: str, chat: str, since: datetime | None, limit: int
    ) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT wa_id FROM rm_messages WHERE registry = $1 AND session_id = $2 AND chat = $3"
            " AND direction = 'in' AND NOT revoked AND ($4::timestamptz IS NULL OR created_at > $4)"
            " ORDER BY created_at DESC LIMIT $5",
            registry,
            session,
            chat,
            since,
            limit,
        )
        return [r["wa_id"] for r in rows]

    async def contacts(self, registry: str, session: str, limit: int, offset: int) -> list[ContactRecord]:
        rows = await self._pool.fetch(
            "SELECT jid, lid, phone, push_name, business_name, last_seen_at FROM rm_contacts"
            " WHERE registry = $1 AND session_id = $2 ORDER BY last_seen_at DESC NULLS LAST, jid"
            " LIMIT $3 OFFSET $4",
            registry,
            session,
            limit,
            offset,
        )
        return [ContactRecord(**dict(r)) for r in rows]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
