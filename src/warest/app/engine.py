"""The WhatsApp engine port: what the application needs from an engine, and what an
engine reports back. Two engines implement it: ``sandbox`` (a simulated network in
process) and ``neonize`` (real WhatsApp through whatsmeow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SessionRef:
    """A session as engines know it: its tenant, its name and a stable device key."""

    registry: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.registry}/{self.name}"


@dataclass(frozen=True)
class Me:
    jid: str
    lid: str | None = None
    push_name: str | None = None


@dataclass(frozen=True)
class InboundMessage:
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
    """``status`` is one of server, delivered, read, played."""

    chat: str
    wa_ids: tuple[str, ...]
    status: str
    at: datetime
    by: str | None = None


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
    """What an engine reports, per session. Calls arrive on the event loop, in order."""

    async def qr(self, qr: str, duration_s: int, attempt: int) -> None: ...
    async def pairing_code(self, code: str, phone: str) -> None: ...
    async def connecting(self) -> None: ...
    async def opened(self, me: Me) -> None: ...
    async def reconnecting(self, attempt: int, reason: str, retry_in_s: float | None = None) -> None:
        """The link is down; reported at every attempt (``retry_in_s``: until the next one).
        The listener records the loss once per outage; the attempts are live status."""
        ...

    async def logged_out(self, reason: str) -> None: ...
    async def replaced(self, reason: str) -> None: ...
    async def closed(self, reason: str) -> None: ...
    async def banned(self, reason: str, until: datetime | None) -> None: ...
    async def message(self, message: InboundMessage) -> None: ...
    async def receipt(self, receipt: Receipt) -> None: ...
    async def edited(self, chat: str, target_id: str, by: str, text: str, at: datetime) -> None: ...
    async def revoked(self, chat: str, target_id: str, by: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class Device:
    name: str
    phone: str | None
    platform: str
    extra: dict[str, str] = field(default_factory=dict)


class Connection(Protocol):
    """One session's link to WhatsApp."""

    async def start(self, pair_phone: str | None = None) -> None:
        """Connects; logs in with a QR, or with a pairing code for ``pair_phone``."""
        ...

    async def stop(self) -> None:
        """Disconnects and keeps the linked device (it comes back on the next start)."""
        ...

    async def logout(self) -> None:
        """Unlinks the device and forgets its credentials."""
        ...

    async def send_text(self, message: OutboundText) -> SendResult: ...

    async def send_presence(self, to: str, state: str) -> None:
        """``state``: composing, recording or paused."""
        ...

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

    async def device(self) -> Device | None: ...

    @property
    def connected(self) -> bool: ...


class Engine(Protocol):
    name: str

    def connection(self, session: SessionRef, listener: EngineListener) -> Connection: ...

    async def forget(self, session: SessionRef) -> None:
        """Removes every stored credential of ``session`` (used when it is deleted)."""
        ...

    async def close(self) -> None: ...
