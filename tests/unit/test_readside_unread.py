"""What "mark the chat read" marks: every message recorded so far, not only those the
messages read model has reached (it may be behind the chats read model the caller saw)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from warest.app.readside import ReadService


class Projection:
    """The messages read model: two of three received messages projected until caught up."""

    def __init__(self) -> None:
        self.caught_up = False

    async def wait_latest(self, timeout: float = 5.0) -> bool:
        self.caught_up = True
        return True

    async def wait(self, position: int, timeout: float = 5.0) -> bool:
        return await self.wait_latest(timeout)

    async def chat(self, registry: str, session: str, jid: str) -> Any:
        return None

    async def unread_inbound(
        self, registry: str, session: str, chat: str, since: datetime | None, limit: int
    ) -> list[str]:
        return ["m1", "m2", "m3"] if self.caught_up else ["m1", "m2"]


class Sessions:
    async def get(self, owner: Any, name: str) -> Any:
        return SimpleNamespace(registry="REG", session_id=name)


async def test_unread_waits_for_everything_recorded_before_it_reads() -> None:
    projection = Projection()
    reads = ReadService(projection, Sessions(), projection)  # type: ignore[arg-type]
    owner: Any = SimpleNamespace(registry="REG")
    assert await reads.unread(owner, "sb", "628@s.whatsapp.net", 500) == ["m1", "m2", "m3"]
