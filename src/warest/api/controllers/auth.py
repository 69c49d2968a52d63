"""``/api/auth``: password login and the docs-session cookie (an opaque server token)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody

from warest.api.auth import DOCS_COOKIE, client_address, header_key, is_trusted, refuse_query_key
from warest.api.codes import Code
from warest.api.dependencies import AppSettings, Users
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.params import NAME_MAX, PASSWORD_MAX, Body
from warest.app.records import Principal
from warest.config import Settings


class LoginBody(Body, kw_only=True):
    limits = {"username": NAME_MAX, "password": PASSWORD_MAX}

    username: str = msgspec.field()
    password: str = msgspec.field()


class SessionBody(Body, kw_only=True):
    apiKey: str | None = None  # noqa: N815 (the original's field name)
    token: str | None = None


def _cookie(request: Request[Any, Any, Any], token: str, max_age: int, settings: Settings) -> Cookie:
    secure_setting = settings.cookie_secure
    if secure_setting == "auto":
        # X-Forwarded-Proto is believed only from a trusted proxy, like X-Forwarded-For.
        forwarded = request.headers.get("x-forwarded-proto", "") if _peer_trusted(request, settings) else ""
        secure = request.url.scheme == "https" or forwarded == "https"
    else:
        secure = secure_setting == "true"
    return Cookie(
        key=DOCS_COOKIE,
        value=token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def _peer_trusted(request: Request[Any, Any, Any], settings: Settings) -> bool:
    return is_trusted(request.client.host if request.client else "", settings.trusted_proxies)


def _expired_cookie() -> Cookie:
    return Cookie(key=DOCS_COOKIE, value="", max_age=0, path="/", httponly=True, samesite="strict")


def _who(principal: Principal) -> dict[str, Any]:
    return {
        "username": principal.username,
        "registry": principal.registry,
        "role": principal.role,
        "isAdmin": principal.is_admin,
    }


class AuthController(Controller):
    path = "/api/auth"
    opt = {"public": True}
    tags = ["auth"]

    @post("/login", status_code=200)
    async def login(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        settings: AppSettings,
        data: JSONBody[LoginBody],
    ) -> Response[Envelope]:
        """Password login; sets the docs-session cookie. Locks out after repeated failures."""
        if not data.username.strip() or not data.password:
            raise ApiError(Code.MISSING_PARAMETER, "username and password are required")
        address = client_address(request, settings.trusted_proxies)
        try:
            principal, token = await users.login(data.username, data.password, address)
        except Exception:
            request.scope.pop("user", None)  # type: ignore[misc]
            raise
        request.scope["user"] = principal
        cookie = _cookie(request, token, settings.docs_session_ttl_s, settings)
        return envelope(Code.SUCCESS, "Logged in", _who(principal), cookies=[cookie])

    @post("/session", status_code=200)
    async def session(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        settings: AppSettings,
        data: JSONBody[SessionBody | None] = None,
    ) -> Response[Envelope]:
        """Exchanges an API key for a docs-session cookie (the key itself is never stored)."""
        refuse_query_key(request)
        key = header_key(request) or (data.apiKey or data.token if data else None)
        if not key:
            raise ApiError(Code.MISSING_PARAMETER, "apiKey is required")
        principal = await users.authenticate_key(key)
        if principal is None:
            raise ApiError(Code.UNAUTHORIZED, "Invalid API key")
        request.scope["user"] = principal
        token = await users.start_docs_session(principal)
        cookie = _cookie(request, token, settings.docs_session_ttl_s, settings)
        return envelope(Code.SUCCESS, "Docs session started", _who(principal), cookies=[cookie])

    @post("/logout", status_code=200)
    async def logout(self, request: Request[Any, Any, Any], users: Users) -> Response[Envelope]:
        """Revokes the docs session on the server and clears the cookie."""
        token = request.cookies.get(DOCS_COOKIE, "")
        await users.logout(token)
        return envelope(Code.SUCCESS, "Logged out", cookies=[_expired_cookie()])
