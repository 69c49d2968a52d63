"""The QR a session shows now (``session_login_qr``, migration 0016), outside the event log.

Written by the session runtime (asyncpg) before it records ``Session.QrIssued``; read by the
webhook outbox (psycopg, in its batch) to put the string into the ``qr`` webhook event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import psycopg


class PgLoginQrs:
    """``LoginQrs`` over asyncpg: one row per session, each QR replacing the one before."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, session_id: UUID, attempt: int, qr: str) -> None:
        await self._pool.execute(
            "INSERT INTO session_login_qr (session_id, attempt, qr, issued_at) VALUES ($1, $2, $3, now())"
            " ON CONFLICT (session_id) DO UPDATE SET attempt = EXCLUDED.attempt, qr = EXCLUDED.qr,"
            " issued_at = EXCLUDED.issued_at",
            session_id,
            attempt,
            qr,
        )


def shown_qrs(cur: psycopg.Cursor[Any], sessions: Iterable[UUID]) -> dict[tuple[UUID, int], str]:
    """(session id, attempt) -> QR string, for the sessions' current QRs."""
    wanted = list(sessions)
    if not wanted:
        return {}
    rows = cur.execute(
        "SELECT session_id, attempt, qr FROM session_login_qr WHERE session_id = ANY(%s::uuid[])", (wanted,)
    ).fetchall()
    return {(sid, attempt): qr for sid, attempt, qr in rows}
