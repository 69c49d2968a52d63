"""The login secrets a session shows now, outside the event log: its QR
(``session_login_qr``, migration 0016) and its pairing code (``session_login_code``,
migration 0017).

Written by the session runtime (asyncpg) before it records ``Session.QrIssued`` or
``Session.PairingCodeIssued``; read by the webhook outbox (psycopg, in its batch) to put the
QR into the ``qr`` webhook event and the code into the ``pairing_code`` one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
import psycopg


class PgLoginQrs:
    """``LoginQrs`` over asyncpg: one row per session in each table, each secret replacing
    the one before."""

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

    async def put_pairing_code(self, session_id: UUID, phone: str, code: str, issued_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO session_login_code (session_id, phone, code, issued_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (session_id) DO UPDATE SET phone = EXCLUDED.phone, code = EXCLUDED.code,"
            " issued_at = EXCLUDED.issued_at",
            session_id,
            phone,
            code,
            issued_at,
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


class ShownCode(NamedTuple):
    """The pairing code a session shows now, for ``phone``, issued at ``issued_at``."""

    phone: str
    code: str
    issued_at: datetime

    def of(self, phone: str, recorded_at: datetime) -> str | None:
        """The code, if it is the one a ``PairingCodeIssued`` for ``phone`` recorded at
        ``recorded_at`` announced (the runtime stores a code before it records its event:
        a code issued after the event replaced the event's own)."""
        return self.code if self.phone == phone and self.issued_at <= recorded_at else None


def shown_codes(cur: psycopg.Cursor[Any], sessions: Iterable[UUID]) -> dict[UUID, ShownCode]:
    """Session id -> the pairing code it shows now, for the sessions that have one."""
    wanted = list(sessions)
    if not wanted:
        return {}
    rows = cur.execute(
        "SELECT session_id, phone, code, issued_at FROM session_login_code"
        " WHERE session_id = ANY(%s::uuid[])",
        (wanted,),
    ).fetchall()
    return {sid: ShownCode(phone, code, issued_at) for sid, phone, code, issued_at in rows}
