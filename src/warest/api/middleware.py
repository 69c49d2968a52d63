"""ASGI middleware: identity and security headers on every response, and access logs.

Access logs carry method, path (never the query string), status, duration and the
caller's registry: no keys, no bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from warest.app.records import Principal

log = logging.getLogger("warest.access")

LABEL_KEY = "warest_label"
STATUS_KEY = "warest_status"

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' data: https://fonts.gstatic.com; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def set_label(scope: Scope, label: str) -> None:
    """Marks the response of this request with ``X-WAREST-Label``."""
    scope[LABEL_KEY] = label  # type: ignore[literal-required]


def header_safe(value: str) -> str:
    """ASCII labels travel as they are; others percent-encoded (UTF-8), never raw."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")


def identity_headers(version: str) -> Callable[[Message, Scope], Awaitable[None]]:
    """A ``before_send`` hook: runs for every response, error responses included."""
    static = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-warest-version", version.encode()),
    ]
    api_csp = (b"content-security-policy", API_CSP.encode())
    docs_csp = (b"content-security-policy", DOCS_CSP.encode())
    ours = {name for name, _ in static} | {
        b"content-security-policy",
        b"x-warest-registry",
        b"x-warest-username",
        b"x-warest-label",
    }

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        pairs = [*static, docs_csp if scope.get("path", "").startswith("/docs") else api_csp]
        principal: Any = scope.get("user")
        if isinstance(principal, Principal):
            pairs.append((b"x-warest-registry", principal.registry.encode("latin-1")))
            pairs.append((b"x-warest-username", principal.username.encode("latin-1")))
            label = scope.get(LABEL_KEY)
            if label:
                pairs.append((b"x-warest-label", header_safe(str(label)).encode("latin-1")))
        raw: Any = message.get("headers")
        if isinstance(raw, list) and not any(name.lower() in ours for name, _ in raw):
            raw.extend(pairs)  # the usual case, on every request: nothing to replace
        else:
            headers = MutableScopeHeaders.from_message(message)
            for name, value in pairs:
                headers[name.decode()] = value.decode("latin-1")
        scope[STATUS_KEY] = message["status"]  # type: ignore[literal-required]

    return before_send


class AccessLogMiddleware:
    """Wraps the whole ASGI app, so failed authentications are logged too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            principal = scope.get("user")
            log.info(
                "%s %s %s %.1fms",
                scope.get("method"),
                scope.get("path"),
                scope.get(STATUS_KEY, 0),
                (time.perf_counter() - started) * 1000,
                extra={"registry": principal.registry if isinstance(principal, Principal) else None},
            )
