"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from warest import __version__
from warest.api.auth import ApiKeyMiddleware, docs_guard
from warest.api.controllers.auth import AuthController
from warest.api.controllers.chats import ChatsController, ContactsController
from warest.api.controllers.events import EventsController
from warest.api.controllers.messages import MessageActionsController, MessagesController
from warest.api.controllers.projections import ProjectionsAdminController
from warest.api.controllers.sandbox import SandboxController, sandbox_off
from warest.api.controllers.server import ServerAdminController, code_table_route, healthz, ping, ready
from warest.api.controllers.sessions import AdminSessionsController, SessionController
from warest.api.controllers.users import UsersController
from warest.api.controllers.webhooks import (
    WebhooksController,
    preflight_failed_handler,
    preflight_legacy,
    preflight_v1,
)
from warest.api.dependencies import DEPENDENCIES, SERVICES
from warest.api.errors import OutageClassifier, exception_handlers
from warest.api.guards_input import GuardedRequest, InputGuardMiddleware
from warest.api.middleware import identity_headers
from warest.app.services import Services
from warest.app.webhooks import PreflightFailed

EXPOSED_HEADERS = [
    "X-WAREST-Registry",
    "X-WAREST-Username",
    "X-WAREST-Version",
    "X-WAREST-Label",
    "X-WAREST-Next-After",
    "X-WAREST-Next-Before",
    "Retry-After",
]
ALLOWED_HEADERS = ["Content-Type", "X-WAREST-API-KEY", "Authorization", "Idempotency-Key", "Last-Event-ID"]


def default_origins(host: str, port: int, base_url: str) -> list[str]:
    origins = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if host not in {"0.0.0.0", "::", "", "127.0.0.1", "localhost"}:  # noqa: S104
        origins += [f"http://{host}:{port}", f"https://{host}:{port}"]
    if base_url:
        origins.append(base_url.rstrip("/"))
    return origins


def create_app(
    start: Callable[[], Awaitable[Services]],
    stop: Callable[[], Awaitable[None]],
    *,
    allowed_origins: tuple[str, ...] = (),
    host: str = "127.0.0.1",
    port: int = 7308,
    base_url: str = "",
    max_body_bytes: int = 2 * 1024 * 1024,
    sandbox: bool = False,
    debug: bool = False,
    is_outage: OutageClassifier | None = None,
) -> Litestar:
    """``start()`` returns the Services the handlers receive as typed dependencies
    (``warest.api.dependencies``); ``is_outage`` tells which unhandled errors mean the
    database is out of reach (answered 503)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state[SERVICES] = await start()
        try:
            yield
        finally:
            await stop()

    docs_router = Router(path="/docs", route_handlers=[], guards=[docs_guard], opt={"public": True})
    openapi = OpenAPIConfig(
        title="warest",
        version=__version__,
        description="Event-sourced, multi-tenant WhatsApp REST gateway.",
        render_plugins=[ScalarRenderPlugin(path="/")],
        openapi_router=docs_router,
        components=Components(
            security_schemes={
                "ApiKeyAuth": SecurityScheme(
                    type="apiKey", name="X-WAREST-API-KEY", security_scheme_in="header"
                ),
                "BearerAuth": SecurityScheme(type="http", scheme="bearer"),
            }
        ),
        security=[{"ApiKeyAuth": []}, {"BearerAuth": []}],
    )
    origins = list(allowed_origins) or default_origins(host, port, base_url)
    handlers: list[Any] = [
        ping,
        healthz,
        ready,
        code_table_route,
        ServerAdminController,
        AuthController,
        UsersController,
        SessionController,
        AdminSessionsController,
        ProjectionsAdminController,
        MessagesController,
        MessageActionsController,
        ChatsController,
        ContactsController,
        EventsController,
        WebhooksController,
        preflight_v1,
        preflight_legacy,
    ]
    handlers.append(SandboxController if sandbox else sandbox_off)
    return Litestar(
        route_handlers=handlers,
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        middleware=[InputGuardMiddleware, DefineMiddleware(ApiKeyMiddleware, exclude=["^/docs"])],
        request_class=GuardedRequest,
        before_send=[identity_headers(__version__)],
        cors_config=CORSConfig(
            allow_origins=origins,
            allow_headers=ALLOWED_HEADERS,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_credentials="*" not in origins,
            expose_headers=EXPOSED_HEADERS,
            max_age=86400,
        ),
        exception_handlers={
            **exception_handlers(is_outage),
            PreflightFailed: preflight_failed_handler,
        },
        openapi_config=openapi,
        request_max_body_size=max_body_bytes,
        debug=debug,
        logging_config=None,
    )
