"""What the neonize engine can learn from WhatsApp, as small typed values.

The translator produces three kinds (``Translated``):

- the port's own happenings (``warest.app.happenings``: ``Received``, ``Receipt``,
  ``Edited``, ``Revoked``), which the connection hands to its listener as they are;
- link signals (``LinkSignal``), which the connection acts on: they become the port's
  lifecycle happenings once it has done so (``LinkOpened`` → get_me → ``Opened``,
  ``LinkLost`` → reconnect attempts → ``Reconnecting``...);
- what the port has no happening for yet (``NotPorted``: presence, groups, calls, history,
  undecryptable messages), which the connection logs and drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from warest.app.happenings import Edited, Receipt, Received, Revoked

# -- link signals -------------------------------------------------------------------------


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


LinkSignal = (
    LinkOpened
    | LinkLost
    | LinkLoggedOut
    | LinkReplaced
    | LinkBanned
    | LinkFailed
    | PairingSucceeded
    | PairingFailed
)

NotPorted = (
    PresenceSeen
    | ChatPresenceSeen
    | GroupChanged
    | GroupJoined
    | IncomingCall
    | HistorySynced
    | Undecryptable
)

Delivered = Received | Receipt | Edited | Revoked
"""The port's happenings the translator produces as they are."""

Translated = Delivered | LinkSignal | NotPorted
