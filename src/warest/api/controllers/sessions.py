"""``/api/v1/session``: the caller's WhatsApp sessions (registry-scoped)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from warest.api.auth import admin_only
from warest.api.codes import Code
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.middleware import set_label
from warest.app.records import Principal, SessionRecord
from warest.domain.errors import InvalidValue, NotFound
from warest.domain.values import session_name


class SessionBody(msgspec.Struct, kw_only=True):
    sessionId: str | None = None  # noqa: N815
    id: str | None = None
    session: str | None = None
    label: str | None = None
    autoStart: bool | None = None  # noqa: N815
    engine: str | None = None


class ConfigBody(msgspec.Struct, kw_only=True):
    webhookUrl: str | None = None  # noqa: N815
    label: str | None = None
    autoStart: bool | None = None  # noqa: N815


def session_view(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.session_id,
        "sessionId": record.session_id,
        "registryUser": record.registry,
        "label": record.label,
        "status": record.status,
        "autoStart": record.auto_start,
        "engine": record.engine,
        "webhookUrl": record.webhook_url or "",
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


async def _body(request: Request[Any, Any, Any]) -> SessionBody:
    if request.method == "GET" or not await request.body():
        return SessionBody()
    try:
        return msgspec.json.decode(await request.body(), type=SessionBody)
    except msgspec.ValidationError as error:
        field = str(error).rpartition("$.")[2].rstrip("`") if "$." in str(error) else "body"
        raise ApiError(
            Code.INVALID_PARAMETER,
            f"Invalid '{field}': {error}",
            [{"field": field, "reason": str(error), "source": "body"}],
        ) from None
    except msgspec.DecodeError as error:
        raise ApiError(Code.MALFORMED_JSON, f"Malformed JSON body: {error}") from None


def _session_name(request: Request[Any, Any, Any], body: SessionBody) -> str:
    """``sessionId`` (or ``id``/``session``) from the query or the JSON body."""
    query = request.query_params
    raw = next(
        (
            v
            for v in (
                query.get("sessionId"),
                query.get("id"),
                query.get("session"),
                body.sessionId,
                body.id,
                body.session,
            )
            if v
        ),
        None,
    )
    if raw is None:
        raise ApiError(
            Code.SESSION_REQUIRED,
            "sessionId is required",
            [{"field": "sessionId", "reason": "missing", "source": "query"}],
        )
    try:
        return session_name(raw)
    except InvalidValue as error:
        raise ApiError(
            Code.SESSION_REQUIRED,
            "sessionId is invalid",
            [{"field": "sessionId", "reason": error.reason, "source": "query"}],
        ) from None


class SessionController(Controller):
    path = "/api/v1/session"
    tags = ["sessions"]

    @route("/create", http_method=["GET", "POST"], status_code=200)
    async def create(self, request: Request[Principal, Any, Any], state: State) -> Response[Envelope]:
        body = await _body(request)
        name = _session_name(request, body)
        engine = body.engine or request.query_params.get("engine")
        if engine is not None and engine not in ("neonize", "sandbox"):
            raise ApiError(
                Code.INVALID_PARAMETER,
                "Invalid 'engine': must be neonize or sandbox",
                [{"field": "engine", "reason": "must be neonize or sandbox", "source": "body"}],
            )
        record, created = await state.services.sessions.create(
            request.user, name, label=body.label, auto_start=body.autoStart is not False, engine=engine
        )
        set_label(request.scope, record.label)
        return envelope(
            Code.SUCCESS, "Session created" if created else "Session exists", session_view(record)
        )

    @get("/list")
    async def list_sessions(self, request: Request[Principal, Any, Any], state: State) -> Response[Envelope]:
        records = await state.services.sessions.owned(request.user)
        return envelope(
            Code.SUCCESS, f"{len(records)} sessions", {"items": [session_view(r) for r in records]}
        )

    @route("/delete", http_method=["DELETE", "POST"], status_code=200)
    async def delete_session(self, request: Request[Principal, Any, Any], state: State) -> Response[Envelope]:
        name = _session_name(request, await _body(request))
        try:
            await state.services.sessions.delete(request.user, name)
        except NotFound:
            raise ApiError(Code.SESSION_NOT_FOUND, "Session not found") from None
        return envelope(Code.SUCCESS, "Session deleted", {"sessionId": name})

    @post("/{session_id:str}/config", status_code=200)
    async def config(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        session_id: FromPath[str],
        data: JSONBody[ConfigBody],
    ) -> Response[Envelope]:
        try:
            name = session_name(session_id)
            record = await state.services.sessions.configure(
                request.user, name, label=data.label, auto_start=data.autoStart, webhook_url=data.webhookUrl
            )
        except NotFound:
            raise ApiError(Code.SESSION_NOT_FOUND, "Session not found") from None
        except InvalidValue as error:
            raise ApiError(
                Code.SESSION_REQUIRED,
                "sessionId is invalid",
                [{"field": "sessionId", "reason": error.reason, "source": "path"}],
            ) from None
        set_label(request.scope, record.label)
        return envelope(Code.SUCCESS, "Config updated", session_view(record))

    @get("/info")
    async def info(self, request: Request[Principal, Any, Any], state: State) -> Response[Envelope]:
        name = _session_name(request, SessionBody())
        try:
            record = await state.services.sessions.get(request.user, name)
        except NotFound:
            raise ApiError(Code.SESSION_NOT_FOUND, "Session not found") from None
        set_label(request.scope, record.label)
        return envelope(Code.SUCCESS, "Session", session_view(record))


class AdminSessionsController(Controller):
    """Cross-tenant reads: only here, only for admins."""

    path = "/api/v1/admin"
    guards = [admin_only]
    tags = ["admin"]

    @get("/registries/{registry:str}/sessions")
    async def registry_sessions(self, state: State, registry: FromPath[str]) -> Response[Envelope]:
        records = await state.services.sessions.list_registry(registry)
        return envelope(
            Code.SUCCESS, f"{len(records)} sessions", {"items": [session_view(r) for r in records]}
        )
