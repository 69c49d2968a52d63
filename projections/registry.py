"""The registry read model: users (``rm_users``) and sessions (``rm_sessions``).

Pure function of the events: every value written comes from an event (timestamps
included), so a rebuild reproduces the tables exactly. Every statement goes through
``_execute``, which makes text values ``safe`` (push names and reasons come from engines).
"""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import psycopg

from warest.domain.model import stored_topics
from warest.domain.sessions import LIFECYCLE_EVENTS, Session
from warest.domain.text import safe
from warest.domain.users import User

_Cursor = psycopg.Cursor[Any]


def _execute(cur: _Cursor, query: str, params: tuple[Any, ...]) -> None:
    """``cur.execute`` with each text parameter made ``safe`` (NUL cannot be stored in text)."""
    cur.execute(query, tuple(safe(p) if isinstance(p, str) else p for p in params))


class RegistryProjection:
    name: str = "registry"
    tables: tuple[str, ...] = ("rm_users", "rm_sessions")
    topics: tuple[str, ...] = stored_topics(  # renamed lifecycle events: their old topics too
        User.Registered,
        User.Renamed,
        User.PasswordChanged,
        User.ApiKeyRotated,
        User.RoleChanged,
        User.Disabled,
        User.Enabled,
        Session.Configured,
        *LIFECYCLE_EVENTS,
    )

    @singledispatchmethod
    def process(self, event: Any, cur: _Cursor, position: int) -> None:
        """Events this read model does not show are ignored."""

    # -- users ---------------------------------------------------------------

    @process.register
    def _(self, event: User.Registered, cur: _Cursor, position: int) -> None:
        _execute(
            cur,
            "INSERT INTO rm_users (id, username, registry, role, disabled, password_hash,"
            " api_key_digest, key_rotated_at, created_at, updated_at, version, position)"
            " VALUES (%s, %s, %s, %s, false, %s, %s, %s, %s, %s, %s, %s)",
            (
                event.originator_id,
                event.username,
                event.registry,
                event.role.value,
                event.password_hash,
                event.api_key_digest,
                event.timestamp if event.api_key_digest else None,
                event.timestamp,
                event.timestamp,
                event.originator_version,
                position,
            ),
        )

    def _update_user(self, event: Any, cur: _Cursor, position: int, assignments: str, *values: Any) -> None:
        _execute(
            cur,
            f"UPDATE rm_users SET {assignments}, updated_at = %s, version = %s, position = %s WHERE id = %s",
            (*values, event.timestamp, event.originator_version, position, event.originator_id),
        )

    @process.register
    def _(self, event: User.Renamed, cur: _Cursor, position: int) -> None:
        self._update_user(event, cur, position, "username = %s", event.username)

    @process.register
    def _(self, event: User.PasswordChanged, cur: _Cursor, position: int) -> None:
        self._update_user(event, cur, position, "password_hash = %s", event.password_hash)

    @process.register
    def _(self, event: User.ApiKeyRotated, cur: _Cursor, position: int) -> None:
        self._update_user(
            event,
            cur,
            position,
            "api_key_digest = %s, key_rotated_at = %s",
            event.api_key_digest,
            event.timestamp,
        )

    @process.register
    def _(self, event: User.RoleChanged, cur: _Cursor, position: int) -> None:
        self._update_user(event, cur, position, "role = %s", event.role.value)

    @process.register
    def _(self, event: User.Disabled, cur: _Cursor, position: int) -> None:
        self._update_user(event, cur, position, "disabled = %s", True)

    @process.register
    def _(self, event: User.Enabled, cur: _Cursor, position: int) -> None:
        self._update_user(event, cur, position, "disabled = %s", False)

    # -- sessions ------------------------------------------------------------

    @process.register
    def _(self, event: Session.Created, cur: _Cursor, position: int) -> None:
        _execute(
            cur,
            "INSERT INTO rm_sessions (id, registry, session_id, label, auto_start, engine,"
            " status, status_at, created_at, updated_at, version, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'created', %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label,"
            " auto_start = EXCLUDED.auto_start, engine = EXCLUDED.engine,"
            " status = 'created', status_at = EXCLUDED.status_at, status_reason = NULL,"
            " me_jid = NULL, me_lid = NULL, push_name = NULL, created_at = EXCLUDED.created_at,"
            " updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,"
            " position = EXCLUDED.position",
            (
                event.originator_id,
                event.registry,
                event.name,
                event.label,
                event.auto_start,
                event.engine,
                event.timestamp,
                event.timestamp,
                event.timestamp,
                event.originator_version,
                position,
            ),
        )

    @process.register
    def _(self, event: Session.Configured, cur: _Cursor, position: int) -> None:
        _execute(
            cur,
            "UPDATE rm_sessions SET label = COALESCE(%s, label),"
            " auto_start = COALESCE(%s, auto_start),"
            " updated_at = %s, version = %s, position = %s WHERE id = %s",
            (
                event.label,
                event.auto_start,
                event.timestamp,
                event.originator_version,
                position,
                event.originator_id,
            ),
        )

    @process.register
    def _(self, event: Session.Deleted, cur: _Cursor, position: int) -> None:
        _execute(cur, "DELETE FROM rm_sessions WHERE id = %s", (event.originator_id,))

    # -- lifecycle -----------------------------------------------------------

    def _status(
        self,
        event: Any,
        cur: _Cursor,
        position: int,
        status: str,
        reason: str | None = None,
        extra: str = "",
        *values: Any,
    ) -> None:
        _execute(
            cur,
            f"UPDATE rm_sessions SET status = %s, status_reason = %s, status_at = %s{extra},"
            " updated_at = %s, version = %s, position = %s WHERE id = %s",
            (
                status,
                reason,
                event.timestamp,
                *values,
                event.timestamp,
                event.originator_version,
                position,
                event.originator_id,
            ),
        )

    @process.register
    def _(self, event: Session.QrIssued, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "qr")

    @process.register
    def _(self, event: Session.PairingCodeIssued, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "pairing")

    @process.register
    def _(self, event: Session.ConnectionStarted, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "connecting")

    @process.register
    def _(self, event: Session.Opened, cur: _Cursor, position: int) -> None:
        self._status(
            event,
            cur,
            position,
            "open",
            None,
            ", me_jid = %s, me_lid = %s, push_name = %s, last_connected_at = %s",
            event.jid,
            event.lid,
            event.push_name,
            event.timestamp,
        )

    @process.register
    def _(self, event: Session.ConnectionLost, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "reconnecting", event.reason)

    @process.register
    def _(self, event: Session.Suspended, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "suspended", event.reason)

    @process.register
    def _(self, event: Session.LoggedOut, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "logged_out", event.reason, ", me_jid = NULL, me_lid = NULL")

    @process.register
    def _(self, event: Session.Replaced, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "replaced", event.reason)

    @process.register
    def _(self, event: Session.Closed, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "closed", event.reason)

    @process.register
    def _(self, event: Session.Banned, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "banned", event.reason)

    @process.register
    def _(self, event: Session.StartDeferred, cur: _Cursor, position: int) -> None:
        self._status(event, cur, position, "unavailable", event.reason)
