"""Queries over the chats, messages and contacts read models (always one session's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from warest.app.ports import ReadModelWaiter
from warest.app.records import ChatRecord, ContactRecord, MessageRecord, Principal
from warest.app.sessions import SessionService

MAX_LIMIT = 500


@dataclass(frozen=True)
class MessageFilter:
    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    from_me: bool | None = None
    search: str | None = None
    starred: bool | None = None


class ReadQueries(Protocol):
    async def chats(
        self,
        registry: str,
        session: str,
        limit: int,
        before: tuple[datetime | None, str] | None,
        search: str | None,
        archived: bool | None,
    ) -> list[ChatRecord]: ...

    async def chat(self, registry: str, session: str, jid: str) -> ChatRecord | None: ...

    async def messages(
        self,
        registry: str,
        session: str,
        chat: str,
        limit: int,
        before: tuple[datetime, str] | None,
        filters: MessageFilter,
        cleared_at: datetime | None,
    ) -> list[MessageRecord]: ...

    async def unread_inbound(
        self, registry: str, session: str, chat: str, since: datetime | None, limit: int
    ) -> list[str]: ...

    async def contacts(self, registry: str, session: str, limit: int, offset: int) -> list[ContactRecord]: ...


class ReadService:
    def __init__(self, queries: ReadQueries, sessions: SessionService, waiter: ReadModelWaiter) -> None:
        self._queries = queries
        self._sessions = sessions
        self._waiter = waiter

    async def chats(
        self,
        owner: Principal,
        session: str,
        limit: int,
        before: tuple[datetime | None, str] | None,
        search: str | None,
        archived: bool | None,
    ) -> list[ChatRecord]:
        record = await self._sessions.get(owner, session)
        return await self._queries.chats(
            record.registry, record.session_id, _limit(limit), before, search, archived
        )

    async def chat(self, owner: Principal, session: str, jid: str) -> ChatRecord | None:
        record = await self._sessions.get(owner, session)
        return await self._queries.chat(record.registry, record.session_id, jid)

    async def messages(
        self,
        owner: Principal,
        session: str,
        chat: str,
        limit: int,
        before: tuple[datetime, str] | None,
        filters: MessageFilter,
    ) -> list[MessageRecord]:
        record = await self._sessions.get(owner, session)
        info = await self._queries.chat(record.registry, record.session_id, chat)
        cleared = info.cleared_at if info else None
        return await self._queries.messages(
            record.registry, record.session_id, chat, _limit(limit), before, filters, cleared
        )

    async def unread(self, owner: Principal, session: str, chat: str, limit: int) -> list[str]:
        """What a command marks read: so it must include every message recorded so far, not
        only those the messages read model has reached (the chats read model, which the
        caller may have looked at, can be ahead of it)."""
        await self._waiter.wait_latest()
        record = await self._sessions.get(owner, session)
        info = await self._queries.chat(record.registry, record.session_id, chat)
        return await self._queries.unread_inbound(
            record.registry, record.session_id, chat, info.read_at if info else None, _limit(limit)
        )

    async def contacts(self, owner: Principal, session: str, limit: int, offset: int) -> list[ContactRecord]:
        record = await self._sessions.get(owner, session)
        return await self._queries.contacts(record.registry, record.session_id, _limit(limit), max(0, offset))


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))
