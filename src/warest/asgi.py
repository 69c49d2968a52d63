"""ASGI entry point for servers: ``warest.asgi:app`` (also ``create()`` as a factory)."""

from __future__ import annotations

import os

from litestar import Litestar

from warest.api.app import create_app
from warest.api.body_timeout import BodyTimeoutMiddleware
from warest.api.middleware import AccessLogMiddleware
from warest.bootstrap.server import Container
from warest.config import Settings
from warest.infra.db.outage import database_outage
from warest.logs import setup_logging
from warest.supervision import exit_with_supervisor


def create(settings: Settings | None = None) -> AccessLogMiddleware:
    """The server's ASGI app: JSON logs, access logging around the Litestar application,
    whose request bodies must keep arriving (``WAREST_BODY_TIMEOUT_MS``)."""
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    if settings.supervisor_pid and settings.supervisor_pid != os.getpid():
        exit_with_supervisor(settings.supervisor_pid)
    app = create_litestar(settings, server=True)
    return AccessLogMiddleware(BodyTimeoutMiddleware(app, settings.body_timeout_ms / 1000))


def create_litestar(settings: Settings | None = None, *, server: bool = False) -> Litestar:
    """``server``: this process is a ``warest serve`` worker (not a test harness)."""
    settings = settings or Settings.from_env()
    container = Container(settings, settle_gc=server, stop_on_signal=server)
    return create_app(
        container.start,
        container.stop,
        allowed_origins=settings.allowed_origins,
        host=settings.host,
        port=settings.port,
        base_url=settings.base_url,
        sandbox=settings.sandbox_enabled,
        is_outage=database_outage,
    )
