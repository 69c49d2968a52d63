"""Typed wiring: every service a handler uses arrives as a typed parameter.

``create_app`` registers ``DEPENDENCIES`` on the application, so a handler declares, say,
``users: Users`` (Litestar's ``NamedDependency[UserService]``: mypy sees ``UserService``)
and Litestar passes ``Services.users`` of the running server. Each provider reads
``app.state`` once, through ``services_of``, which checks the object the composition root
stored there; nothing between a controller and a service is ``Any``.

Dependencies are not request parameters: they never appear in the OpenAPI document.
Protocol-typed ports (``Sandbox``, ``Health``, ``Parked``) skip Litestar's runtime value
check, which can only test classes; mypy still checks every use.
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from warest.api.codes import Code
from warest.api.errors import ApiError
from warest.app.actions import ActionService
from warest.app.history import EventHistory
from warest.app.messaging import MessagingService
from warest.app.parking import ParkedEvents
from warest.app.readside import ReadService
from warest.app.sandbox import SandboxControl
from warest.app.services import HealthCheck, Services
from warest.app.sessions import SessionService
from warest.app.users import UserService
from warest.app.webhooks import WebhookService
from warest.config import Settings

SERVICES = "services"
SANDBOX_OFF = (
    "The sandbox is not enabled on this server: start it with WAREST_ENGINE=sandbox"
    " (or WAREST_SANDBOX_ENABLED=true to keep another default engine)"
)

AppSettings = NamedDependency[Settings]
Users = NamedDependency[UserService]
Sessions = NamedDependency[SessionService]
Messaging = NamedDependency[MessagingService]
History = NamedDependency[EventHistory]
Reads = NamedDependency[ReadService]
Actions = NamedDependency[ActionService]
Version = NamedDependency[str]
Webhooks = NamedDependency[WebhookService | None]
Sandbox = NamedDependency[SkipValidation[SandboxControl]]
Health = NamedDependency[SkipValidation[HealthCheck]]
Parked = NamedDependency[SkipValidation[ParkedEvents | None]]


def services_of(state: State) -> Services:
    """The services the composition root stored when the application started."""
    services = state.get(SERVICES)
    if not isinstance(services, Services):
        raise RuntimeError("the application has not started: app.state holds no Services")
    return services


def settings(state: State) -> Settings:
    return services_of(state).settings


def users(state: State) -> UserService:
    return services_of(state).users


def sessions(state: State) -> SessionService:
    return services_of(state).sessions


def messaging(state: State) -> MessagingService:
    return services_of(state).messaging


def history(state: State) -> EventHistory:
    return services_of(state).history


def reads(state: State) -> ReadService:
    return services_of(state).reads


def actions(state: State) -> ActionService:
    return services_of(state).actions


def health(state: State) -> HealthCheck:
    return services_of(state).health


def version(state: State) -> str:
    return services_of(state).version


def webhooks(state: State) -> WebhookService | None:
    """None when webhooks are off on this server (``enabled_webhooks`` answers 503 then)."""
    return services_of(state).webhooks


def parked(state: State) -> ParkedEvents | None:
    """None when this server keeps no parked events (``enabled_parked`` answers 503 then)."""
    return services_of(state).parked


def sandbox(state: State) -> SandboxControl:
    """Only the sandbox controller asks for it, and it is mounted only with the sandbox on."""
    control = services_of(state).sandbox
    if control is None:
        raise ApiError(Code.NOT_FOUND, SANDBOX_OFF)
    return control


def enabled_webhooks(webhooks: WebhookService | None) -> WebhookService:
    if webhooks is None:
        raise ApiError(
            Code.SERVICE_UNAVAILABLE, "Webhooks are disabled on this server (WAREST_WEBHOOK_ENABLED)"
        )
    return webhooks


def enabled_parked(parked: ParkedEvents | None) -> ParkedEvents:
    if parked is None:
        raise ApiError(Code.SERVICE_UNAVAILABLE, "Read models are not available")
    return parked


DEPENDENCIES: dict[str, Provide] = {
    provider.__name__: Provide(provider, sync_to_thread=False)
    for provider in (
        settings,
        users,
        sessions,
        messaging,
        history,
        reads,
        actions,
        health,
        version,
        webhooks,
        parked,
        sandbox,
    )
}
