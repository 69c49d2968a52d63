"""Parked events: what the read models could not apply, and retrying it after a fix.

A projection that cannot apply an event (its data, or a bug for it) records it as parked and
moves past it, so one tenant's bad event never stops a read model for everyone. Operators see
them (``/healthz``, the admin API, the logs) and retry them once the cause is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ParkedEvent:
    projection: str
    position: int
    originator_id: str
    originator_version: int
    topic: str
    error: str
    parked_at: datetime
    attempts: int
    retried_at: datetime | None


@dataclass(frozen=True)
class RetryOutcome:
    projection: str
    applied: int
    failed: int


class ParkedEvents(Protocol):
    def names(self) -> list[str]:
        """The read models that may park events."""
        ...

    def counts(self) -> dict[str, int]:
        """Parked events per read model (only those with some), as last seen (cheap: health)."""
        ...

    async def tally(self) -> dict[str, int]:
        """Parked events per read model (only those with some), counted now."""
        ...

    async def events(self, projection: str | None = None, limit: int = 100) -> list[ParkedEvent]:
        """Parked events in log order, of one read model or all."""
        ...

    async def retry(self, projection: str | None = None) -> list[RetryOutcome]:
        """Applies the parked events again (of one read model or all): those that apply are
        no longer parked."""
        ...
