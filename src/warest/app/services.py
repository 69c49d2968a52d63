"""What the HTTP layer may use: the application services and ports the composition root
built, each with its precise type (the API hands them to handlers as typed dependencies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from warest.app.actions import ActionService
from warest.app.history import EventHistory
from warest.app.messaging import MessagingService
from warest.app.parking import ParkedEvents
from warest.app.ports import ReadModelWaiter
from warest.app.readside import ReadService
from warest.app.sandbox import SandboxControl
from warest.app.sessions import SessionService
from warest.app.users import UserService
from warest.app.webhooks import WebhookService
from warest.config import Settings


class HealthCheck(Protocol):
    """Checks the server's dependencies: one named result each (``database``, ...)."""

    async def __call__(self) -> dict[str, bool]: ...


@dataclass
class Services:
    """What the HTTP layer may use. ``sandbox``, ``webhooks`` and ``parked`` are None when
    that feature is off on this server."""

    settings: Settings
    version: str
    users: UserService
    sessions: SessionService
    messaging: MessagingService
    sandbox: SandboxControl | None
    waiter: ReadModelWaiter
    health: HealthCheck
    history: EventHistory
    reads: ReadService
    actions: ActionService
    webhooks: WebhookService | None = None
    parked: ParkedEvents | None = None
