"""What the neonize engine can learn from WhatsApp, as small typed values ("happenings").

The translator produces them; the connection acts on the lifecycle ones, delivers the
port's InboundMessage / Receipt and the edits and revokes of messages, and logs and drops
the rest, which the engine port has no callback for yet (presence, groups, calls, history,
undecryptable messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from warest.app.engine import InboundMessage, Receipt

# -- lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkOpened:
    """Logged in and connected; the connection asks the client who it is (get_me)."""


@dataclass(frozen=True)
class LinkLost:
    """The socket dropped unexpectedly; a reconnect is due."""

    reason: str


@dataclass(frozen=True)
class LinkLoggedOut:
    """The device was unlinked by WhatsApp or from the phone; credentials are void."""

    reason: str
    on_connect: bool = False


@dataclass(frozen=True)
class LinkReplaced:
    """Another client opened a stream for the same device."""

    reason: str = "stream_replaced"


@dataclass(frozen=True)
class LinkBanned:
    reason: str
    until: datetime | None


@dataclass(frozen=True)
class LinkFailed:
    """A connect failure whatsmeow will not retry by itself (outdated client, bad agent...)."""

    reason: str


@dataclass(frozen=True)
class PairingSucceeded:
    jid: str | None
    platform: str | None = None
    business_name: str | None = None


@dataclass(frozen=True)
class PairingFailed:
    error: str


# -- follow-ups of messages ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageEdited:
    """``wa_id``: the message that was edited (the edit itself arrives with an id of its own)."""

    wa_id: str
    chat: str
    sender: str
    text: str | None
    at: datetime


@dataclass(frozen=True)
class MessageRevoked:
    chat: str
    sender: str
    target_id: str
    at: datetime


# -- not deliverable through the port yet ---------------------------------------------------


@dataclass(frozen=True)
class PresenceSeen:
    jid: str
    available: bool
    last_seen: datetime | None


@dataclass(frozen=True)
class ChatPresenceSeen:
    """Someone is typing (composing), recording audio, or stopped (paused) in a chat."""

    chat: str
    sender: str | None
    state: str


@dataclass(frozen=True)
class GroupChanged:
    group: str
    by: str | None
    at: datetime
    name: str | None = None
    topic: str | None = None
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    promoted: tuple[str, ...] = ()
    demoted: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupJoined:
    group: str
    name: str | None
    reason: str | None
    by: str | None


@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    caller: str | None
    at: datetime
    platform: str | None


@dataclass(frozen=True)
class HistorySynced:
    sync_type: str
    conversations: int
    progress: int | None


@dataclass(frozen=True)
class Undecryptable:
    wa_id: str
    chat: str | None
    sender: str | None
    unavailable: bool
    at: datetime


Happening = (
    InboundMessage
    | Receipt
    | LinkOpened
    | LinkLost
    | LinkLoggedOut
    | LinkReplaced
    | LinkBanned
    | LinkFailed
    | PairingSucceeded
    | PairingFailed
    | MessageEdited
    | MessageRevoked
    | PresenceSeen
    | ChatPresenceSeen
    | GroupChanged
    | GroupJoined
    | IncomingCall
    | HistorySynced
    | Undecryptable
)
