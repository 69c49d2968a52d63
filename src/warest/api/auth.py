"""Authentication: API keys from headers only, docs cookies, admin guard, client address.

Keys are accepted in ``X-WAREST-API-KEY`` or ``Authorization: Bearer`` and nowhere else; a
key in the query string is refused outright so it never lands in access logs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Method, Scopes

from warest.api.codes import Code
from warest.api.dependencies import services_of
from warest.api.errors import ApiError
from warest.app.records import Principal

DOCS_COOKIE = "WAREST_DOCS_SESSION"
QUERY_KEY_NAMES = ("api_key", "apikey", "apiKey", "token", "key")
PUBLIC = "public"


def header_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    key = connection.headers.get("x-warest-api-key")
    if key and key.strip():
        return key.strip()
    authorization = connection.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return None


def refuse_query_key(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    if any(name in connection.query_params for name in QUERY_KEY_NAMES):
        raise ApiError(
            Code.UNAUTHORIZED,
            "API keys are not accepted in the query string; send X-WAREST-API-KEY or Authorization: Bearer",
        )


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    """Resolves the caller of every route not marked ``opt={"public": True}``."""

    def __init__(
        self,
        app: ASGIApp,
        exclude: str | list[str] | None = None,
        exclude_from_auth_key: str = PUBLIC,
        exclude_http_methods: Sequence[Method] | None = None,
        scopes: Scopes | None = None,
    ) -> None:
        super().__init__(app, exclude, exclude_from_auth_key, exclude_http_methods or ["OPTIONS"], scopes)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        refuse_query_key(connection)
        key = header_key(connection)
        if key is None:
            raise ApiError(
                Code.UNAUTHORIZED, "Missing API key: send X-WAREST-API-KEY or Authorization: Bearer"
            )
        principal = await services_of(connection.app.state).users.authenticate_key(key)
        if principal is None:
            raise ApiError(Code.UNAUTHORIZED, "Invalid API key")
        return AuthenticationResult(user=principal, auth="api-key")


async def docs_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller of a docs route: an API key header or the docs-session cookie."""
    refuse_query_key(connection)
    users = services_of(connection.app.state).users
    key = header_key(connection)
    if key is not None:
        return await users.authenticate_key(key)
    token = connection.cookies.get(DOCS_COOKIE)
    if token:
        return await users.principal_for_token(token)
    return None


async def docs_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal = await docs_principal(connection)
    if principal is None:
        raise ApiError(
            Code.UNAUTHORIZED,
            "Log in (POST /api/auth/login) or send an API key to read the docs",
            [{"login": "/api/auth/login"}],
        )
    connection.scope["user"] = principal


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal) or not principal.is_admin:
        raise ApiError(Code.FORBIDDEN, "Admin only")


def client_address(
    connection: ASGIConnection[Any, Any, Any, Any],
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address: ``X-Forwarded-For`` is believed only from trusted proxies.

    The header is walked from the right, skipping trusted proxies; the first untrusted
    hop is the client.
    """
    peer = connection.client.host if connection.client else "unknown"
    if not trusted or not is_trusted(peer, trusted):
        return peer
    forwarded = connection.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop if _valid_ip(hop) else peer
    return hops[0] if hops and _valid_ip(hops[0]) else peer


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_trusted(address: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
