"""The sandbox control port: what the HTTP control API may ask of the simulated network.

Every call names the caller's registry; the network answers only about that tenant's
sessions and the accounts it created (NotFound otherwise, like a missing one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class SandboxAccount:
    phone: str
    lid: str
    push_name: str
    about: str = ""
    business: dict[str, Any] | None = None
    picture: str | None = None
    auto_read: bool = False
    owner: str | None = None

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"


@dataclass(frozen=True)
class InboxItem:
    wa_id: str
    sender: str
    chat: str
    text: str | None
    kind: str
    at: datetime
    status: str = "delivered"
    extra: dict[str, Any] = field(default_factory=dict)


FAULT_KINDS = (
    "logout",
    "disconnect",
    "stream_replaced",
    "temp_ban",
    "error_463",
    "duplicate",
    "out_of_order",
    "slow",  # every send waits ``delayMs`` before it reaches the network (0 turns it off)
)


class SandboxControl(Protocol):
    async def create_account(
        self,
        registry: str,
        phone: str,
        *,
        push_name: str | None = None,
        lid: str | None = None,
        about: str = "",
        business: dict[str, Any] | None = None,
        picture: str | None = None,
        auto_read: bool = False,
    ) -> SandboxAccount: ...

    async def account(self, registry: str, phone: str) -> SandboxAccount: ...

    async def scan(self, registry: str, session: str, phone: str) -> SandboxAccount:
        """Scans the session's current QR with the account ``phone``: the session links."""
        ...

    async def pair(self, registry: str, phone: str, code: str) -> str:
        """Enters a pairing code on the account ``phone``; returns the linked session's name."""
        ...

    async def send(
        self, registry: str, sender: str, to: str, text: str, *, quoted_id: str | None = None
    ) -> str:
        """An external account sends a text; returns its WhatsApp message id."""
        ...

    async def fault(
        self, registry: str, kind: str, *, session: str | None, phone: str | None, options: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def inbox(self, registry: str, phone: str, limit: int = 100) -> list[InboxItem]: ...
