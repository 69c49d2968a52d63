"""ASGI entry point for servers: ``warest.asgi:app`` (also ``create()`` as a factory)."""

from __future__ import annotations

from litestar import Litestar

from warest.api.app import create_app
from warest.api.middleware import AccessLogMiddleware
from warest.bootstrap import Container
from warest.config import Settings
from warest.logs import setup_logging


def create(settings: Settings | None = None) -> AccessLogMiddleware:
    """The server's ASGI app: JSON logs, access logging around the Litestar application."""
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    return AccessLogMiddleware(create_litestar(settings))


def create_litestar(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    container = Container(settings)
    return create_app(
        container.start,
        container.stop,
        allowed_origins=settings.allowed_origins,
        host=settings.host,
        port=settings.port,
        base_url=settings.base_url,
        sandbox=settings.sandbox_enabled,
    )
