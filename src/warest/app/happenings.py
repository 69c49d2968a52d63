"""What an engine reports, per session: one closed union of small frozen values.

An engine hands every happening to its listener's ``on(happening)``, on the event loop, one
at a time, in the order it learnt of them. The session runtime dispatches them with one
``match`` whose default branch is ``assert_never``: adding a happening here makes mypy name
every listener that does not handle it yet.

Login codes (a QR string, a pairing code) are secrets for as long as they live: they stay
out of ``repr`` so a happening can be logged whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Me:
    """The account a session is logged in as."""

    jid: str
    lid: str | None = None
    push_name: str | None = None


# -- logging in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QrShown:
    """A QR code to scan, valid for ``duration_s``; ``attempt`` counts the codes of one login."""

    qr: str = field(repr=False)
    duration_s: int
    attempt: int


@dataclass(frozen=True)
class PairingCodeShown:
    """A code to type on the phone ``phone`` (digits) to link this device."""

    code: str = field(repr=False)
    phone: str


# -- the link -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Connecting:
    """The engine is connecting (a start, or a restart of its client)."""


@dataclass(frozen=True)
class Opened:
    """Logged in and connected as ``me``."""

    me: Me


@dataclass(frozen=True)
class Reconnecting:
    """The link is down; reported at every attempt to bring it back (``retry_in_s``: until the
    next one). A listener records the loss once per outage; the attempts are live status."""

    attempt: int
    reason: str
    retry_in_s: float | None = None


@dataclass(frozen=True)
class LoggedOut:
    """The device was unlinked (from the phone, or by WhatsApp): its credentials are void."""

    reason: str


@dataclass(frozen=True)
class Replaced:
    """Another client took the device's stream over."""

    reason: str


@dataclass(frozen=True)
class Closed:
    """The link ended and the engine will not bring it back by itself (QR not scanned, a
    failed start or pairing, a connect failure it does not retry)."""

    reason: str


@dataclass(frozen=True)
class Banned:
    reason: str
    until: datetime | None


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A message in a chat of this account (``from_me``: sent by it from another device).
    A reaction arrives as ``kind="reaction"``, its emoji in ``text`` (empty: removed) and the
    message it reacts to in ``quoted_id``."""

    wa_id: str
    chat: str
    sender: str
    from_me: bool = False
    kind: str = "text"
    text: str | None = None
    push_name: str | None = None
    mentions: tuple[str, ...] = ()
    quoted_id: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Receipt:
    """Messages of this account in ``chat`` reached ``status`` (server, delivered, read,
    played), by ``by`` when known."""

    chat: str
    wa_ids: tuple[str, ...]
    status: str
    at: datetime
    by: str | None = None


@dataclass(frozen=True)
class Edited:
    """``by`` changed the text of the message ``target_id`` in ``chat``."""

    chat: str
    target_id: str
    by: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Revoked:
    """``by`` deleted the message ``target_id`` in ``chat`` for everyone."""

    chat: str
    target_id: str
    by: str
    at: datetime


Happening = (
    QrShown
    | PairingCodeShown
    | Connecting
    | Opened
    | Reconnecting
    | LoggedOut
    | Replaced
    | Closed
    | Banned
    | Received
    | Receipt
    | Edited
    | Revoked
)
