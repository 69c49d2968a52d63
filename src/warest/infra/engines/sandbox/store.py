"""Persistence of the simulated network (accounts, linked devices, inboxes).

What the simulated phones say is engine text: it is stored made ``safe`` (NUL and unpaired
surrogates become U+FFFD), so one account's bad byte cannot fail an inbox flush, which
stores every account's messages together."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from warest.app.sandbox import InboxItem, SandboxAccount
from warest.domain.text import safe, safe_json, safe_optional


def _account(row: Any) -> SandboxAccount:
    business = row["business"]
    return SandboxAccount(
        phone=row["phone"],
        lid=row["lid"],
        push_name=row["push_name"],
        about=row["about"],
        business=json.loads(business) if isinstance(business, str) else business,
        picture=row["picture"],
        auto_read=row["auto_read"],
        owner=row["owner"],
    )


def _safe_item(i: InboxItem) -> tuple[Any, ...]:
    return (safe(i.wa_id), safe(i.sender), safe(i.chat), safe(i.kind), safe_optional(i.text), i.at)


class SandboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def accounts(self) -> list[SandboxAccount]:
        return [_account(r) for r in await self._pool.fetch("SELECT * FROM sandbox_accounts")]

    async def devices(self) -> dict[tuple[str, str], str]:
        rows = await self._pool.fetch("SELECT registry, session_id, phone FROM sandbox_devices")
        return {(r["registry"], r["session_id"]): r["phone"] for r in rows}

    async def add_account(self, account: SandboxAccount) -> bool:
        """Returns False when the phone (or LID) is taken."""
        result: str = await self._pool.execute(
            "INSERT INTO sandbox_accounts (phone, lid, push_name, about, business, picture, auto_read, owner)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT DO NOTHING",
            account.phone,
            account.lid,
            safe(account.push_name),
            safe(account.about),
            json.dumps(safe_json(account.business)) if account.business is not None else None,
            safe_optional(account.picture),
            account.auto_read,
            account.owner,
        )
        return result.endswith(" 1")

    async def link(self, registry: str, session: str, phone: str) -> None:
        await self._pool.execute(
            "INSERT INTO sandbox_devices (registry, session_id, phone) VALUES ($1, $2, $3)"
            " ON CONFLICT (registry, session_id) DO UPDATE SET phone = EXCLUDED.phone, linked_at = now()",
            registry,
            session,
            phone,
        )

    async def unlink(self, registry: str, session: str) -> None:
        await self._pool.execute(
            "DELETE FROM sandbox_devices WHERE registry = $1 AND session_id = $2", registry, session
        )

    async def record_inbox(self, items: list[tuple[str, InboxItem]]) -> None:
        """Stores what external accounts received, ``(phone, item)`` in order, in one transaction.
        A message id an account already has from that sender is ignored (WhatsApp's rule)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO sandbox_inbox (phone, wa_id, sender, chat, kind, text, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (phone, sender, wa_id) DO NOTHING",
                [(phone, *_safe_item(i)) for phone, i in items],
            )

    async def inbox(self, phone: str, limit: int) -> list[InboxItem]:
        rows = await self._pool.fetch(
            "SELECT wa_id, sender, chat, kind, text, at FROM sandbox_inbox WHERE phone = $1"
            " ORDER BY id DESC LIMIT $2",
            phone,
            limit,
        )
        return [
            InboxItem(r["wa_id"], r["sender"], r["chat"], r["text"], r["kind"], r["at"])
            for r in reversed(rows)
        ]
