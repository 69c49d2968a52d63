"""The WhatsApp engine port: what the application needs from an engine, and what an
engine reports back. Two engines implement it: ``sandbox`` (a simulated network in
process) and ``neonize`` (real WhatsApp through whatsmeow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from warest.app.happenings import Happening, Me, Receipt, Received

__all__ = [
    "Connection",
    "Device",
    "Engine",
    "EngineError",
    "EngineListener",
    "Groups",
    "InboundMessage",
    "Link",
    "Me",
    "MessageRef",
    "Messages",
    "NotConnected",
    "OutboundText",
    "Presence",
    "Profile",
    "Receipt",
    "SendResult",
    "SessionRef",
]

InboundMessage = Received
"""The former name of a ``Received`` happening (the message it reports)."""


@dataclass(frozen=True)
class SessionRef:
    """A session as engines know it: its tenant, its name and a stable device key."""

    registry: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.registry}/{self.name}"


@dataclass(frozen=True)
class MessageRef:
    """A message to act on: its id, who sent it and whether that was this account."""

    chat: str
    wa_id: str
    sender: str
    from_me: bool


@dataclass(frozen=True)
class OutboundText:
    """A text to send. ``wa_id`` is the WhatsApp message id warest chose when it queued the
    message (``3EB0`` + 18 hex digits); an engine sends with it whenever it can, so a message
    sent again after a crash is the same message for the recipient."""

    to: str
    wa_id: str
    text: str
    mentions: tuple[str, ...] = ()
    reply_to: str | None = None


@dataclass(frozen=True)
class SendResult:
    """``wa_id``: the id WhatsApp knows the message by; the one it was sent with, unless the
    engine cannot choose ids (then the runtime claims WhatsApp's id for the message)."""

    wa_id: str
    sent_at: datetime


class EngineError(Exception):
    """A failed engine call. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class NotConnected(EngineError):
    def __init__(self, message: str = "session is not connected") -> None:
        super().__init__(message, code="not_connected", retryable=True)


class EngineListener(Protocol):
    """Hears what an engine reports for one session (``warest.app.happenings``): one call
    per happening, on the event loop, one at a time, in the order the engine learnt of them.
    An engine waits for each call to return before making the next (that holds it back
    while the listener is slow)."""

    async def on(self, happening: Happening) -> None: ...


@dataclass(frozen=True)
class Device:
    name: str
    phone: str | None
    platform: str
    extra: dict[str, str] = field(default_factory=dict)


# -- what a connection can do, by capability --------------------------------------------
#
# Each capability is a protocol of its own; a later feature adds its methods to the one it
# belongs to (groups to ``Groups``, profile pictures and names to ``Profile``...), and a
# service asks for the capability it uses rather than for the whole connection.


class Link(Protocol):
    """The session's link to WhatsApp: logging in, out, and what it is linked as."""

    async def start(self, pair_phone: str | None = None) -> None:
        """Connects; logs in with a QR, or with a pairing code for ``pair_phone``."""
        ...

    async def stop(self) -> None:
        """Disconnects and keeps the linked device (it comes back on the next start)."""
        ...

    async def logout(self) -> None:
        """Unlinks the device and forgets its credentials."""
        ...

    async def device(self) -> Device | None: ...

    @property
    def connected(self) -> bool: ...


class Messages(Protocol):
    """Sending messages and acting on them."""

    async def send_text(self, message: OutboundText) -> SendResult: ...

    async def send_reaction(self, target: MessageRef, emoji: str) -> None:
        """Reacts to ``target``; an empty emoji removes this account's reaction."""
        ...

    async def send_edit(self, target: MessageRef, text: str) -> None: ...

    async def send_revoke(self, target: MessageRef) -> None:
        """Deletes ``target`` for everyone."""
        ...

    async def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        """Sends read receipts for received messages."""
        ...


class Presence(Protocol):
    """Telling others what this account is doing."""

    async def send_presence(self, to: str, state: str) -> None:
        """``state``: composing, recording or paused."""
        ...


class Groups(Protocol):
    """Groups and their participants (nothing yet: their issue adds the methods)."""


class Profile(Protocol):
    """This account's profile and contacts (nothing yet: their issue adds the methods)."""


class Connection(Link, Messages, Presence, Groups, Profile, Protocol):
    """One session's link to WhatsApp: every capability an engine offers."""


class Engine(Protocol):
    name: str

    def connection(self, session: SessionRef, listener: EngineListener) -> Connection: ...

    async def forget(self, session: SessionRef) -> None:
        """Removes every stored credential of ``session`` (used when it is deleted)."""
        ...

    async def close(self) -> None: ...
