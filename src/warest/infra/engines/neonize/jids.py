"""JIDs and times between neonize's protobufs and the port's plain values.

The gateway addresses people and chats, never one of their devices, so JIDs leave as
``user@server`` without the ``:device`` / ``.agent`` parts whatsmeow keeps; a LID stays a
LID (``123@lid``), because mapping it to a phone number needs a lookup this pure module
must not make.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from neonize.proto.Neonize_pb2 import JID

from warest.app.engine import EngineError

# Epoch values at or above this are milliseconds: as seconds they would be after year 5000.
# neonize sends MessageInfo.Timestamp in milliseconds but receipts and replies in seconds.
_MILLIS_FROM = 10**11
USER_SERVER = "s.whatsapp.net"


def jid_to_str(jid: JID | None) -> str | None:
    """``user@server`` for a neonize JID, or None for an empty one."""
    if jid is None or not jid.User:
        return None
    return f"{jid.User}@{jid.Server or USER_SERVER}"


def jids_to_str(jids: Iterable[JID]) -> tuple[str, ...]:
    """Every non-empty JID of a repeated JID field, as strings, in order."""
    out: list[str] = []
    for jid in jids:
        text = jid_to_str(jid)
        if text is not None:
            out.append(text)
    return tuple(out)


def jid_from_str(raw: str) -> JID:
    """A neonize JID for ``user@server`` (a ``:device`` suffix is kept as the device).

    A bare number is a phone user. Raises EngineError for an empty address, which the
    application should have refused before it reached the engine.
    """
    text = raw.strip()
    user, _, server = text.partition("@")
    if not user:
        raise EngineError(f"'{raw}' is not a WhatsApp address", code="invalid_jid")
    device = 0
    if ":" in user:
        user, _, suffix = user.partition(":")
        device = int(suffix) if suffix.isdigit() else 0
    user = user.split(".", 1)[0] if server in ("", USER_SERVER, "lid") else user
    return JID(
        User=user,
        Server=(server or USER_SERVER).lower(),
        Device=device,
        RawAgent=0,
        Integrator=0,
        IsEmpty=False,
    )


def from_epoch(value: int, fallback: datetime) -> datetime:
    """An aware UTC datetime for an epoch in seconds or milliseconds; ``fallback`` if unset."""
    if value <= 0:
        return fallback
    seconds = value / 1000 if value >= _MILLIS_FROM else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def maybe_epoch(value: int) -> datetime | None:
    """Like from_epoch, but None for unset or pre-1970 values (Go's zero time is negative)."""
    if value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000 if value >= _MILLIS_FROM else value, tz=UTC)
