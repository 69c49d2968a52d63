"""``/api/v1/session``: the caller's WhatsApp sessions (registry-scoped) and their login."""

from __future__ import annotations

from typing import Any

import msgspec
import segno
from litestar import Controller, Request, Response, get, post, route
from litestar.params import FromPath, JSONBody

from warest.api.auth import admin_only
from warest.api.codes import Code
from warest.api.controllers.webhooks import SECRET_MAX, endpoint_view
from warest.api.dependencies import AppSettings, Sessions, Webhooks, enabled_webhooks
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.guards_input import guard_json, malformed_json
from warest.api.middleware import set_label
from warest.api.params import NAME_MAX, Body, session_param
from warest.app.manager import EngineUnavailable
from warest.app.records import Principal, SessionRecord
from warest.app.runtime import Outage
from warest.app.sessions import LoginState
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid
from warest.domain.webhooks import URL_MAX


class SessionBody(Body, kw_only=True):
    limits = {
        "sessionId": NAME_MAX,
        "id": NAME_MAX,
        "session": NAME_MAX,
        "label": NAME_MAX,
        "engine": NAME_MAX,
        "phone": NAME_MAX,
        "pair": NAME_MAX,
        "pairPhone": NAME_MAX,
    }

    sessionId: str | None = None  # noqa: N815
    id: str | None = None
    session: str | None = None
    label: str | None = None
    autoStart: bool | None = None  # noqa: N815
    engine: str | None = None
    phone: str | None = None
    pair: str | None = None
    pairPhone: str | None = None  # noqa: N815


class ConfigBody(Body, kw_only=True):
    limits = {"label": NAME_MAX, "webhookUrl": URL_MAX, "webhookSecret": SECRET_MAX}

    webhookUrl: str | None = None  # noqa: N815
    webhookSecret: str | None = None  # noqa: N815
    preflight: bool = False
    preflightVerify: bool = False  # noqa: N815
    label: str | None = None
    autoStart: bool | None = None  # noqa: N815


def session_view(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.session_id,
        "sessionId": record.session_id,
        "registryUser": record.registry,
        "label": record.label,
        "status": record.status,
        "statusReason": record.status_reason,
        "me": {"id": record.me_jid, "lid": record.me_lid, "name": record.push_name}
        if record.me_jid
        else None,
        "pushName": record.push_name,
        "lastConn": record.last_connected_at.isoformat() if record.last_connected_at else None,
        "autoStart": record.auto_start,
        "engine": record.engine,
        "webhookUrl": record.webhook_url or "",
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


def outage_view(outage: Outage | None) -> dict[str, Any] | None:
    """The live state of a lost connection (this process's runtime), or None."""
    if outage is None:
        return None
    return {
        "since": outage.since.isoformat(),
        "reason": outage.reason,
        "attempts": outage.attempts,
        "nextRetryAt": outage.next_retry_at.isoformat() if outage.next_retry_at else None,
        "suspended": outage.suspended,
    }


def qr_data_url(qr: str) -> str:
    """The QR string as a PNG data URL (about 300 px wide)."""
    code = segno.make(qr, error="l")
    width = code.symbol_size(scale=1)[0]
    return str(code.png_data_uri(scale=max(1, 300 // width), border=2))


async def _body(request: Request[Any, Any, Any]) -> SessionBody:
    raw = await request.body()
    if request.method == "GET" or not raw:
        return SessionBody()
    guard_json(raw)
    try:
        return msgspec.json.decode(raw, type=SessionBody)
    except msgspec.ValidationError as error:
        field = str(error).rpartition("$.")[2].rstrip("`") if "$." in str(error) else "body"
        raise ApiError(
            Code.INVALID_PARAMETER,
            f"Invalid '{field}': {error}",
            [{"field": field, "reason": str(error), "source": "body"}],
        ) from None
    except msgspec.DecodeError as error:
        raise malformed_json(raw, str(error)) from None


def _pick(
    request: Request[Any, Any, Any], names: tuple[str, ...], body_values: tuple[str | None, ...]
) -> str | None:
    query = request.query_params
    return next((v for v in (*(query.get(n) for n in names), *body_values) if v), None)


def _session_name(request: Request[Any, Any, Any], body: SessionBody) -> str:
    """``sessionId`` (or ``id``/``session``) from the query or the JSON body."""
    return session_param(
        _pick(request, ("sessionId", "id", "session"), (body.sessionId, body.id, body.session))
    )


def _engine(request: Request[Any, Any, Any], body: SessionBody) -> str | None:
    engine = body.engine or request.query_params.get("engine")
    if engine is not None and engine not in ("neonize", "sandbox"):
        raise ApiError(
            Code.INVALID_PARAMETER,
            "Invalid 'engine': must be neonize or sandbox",
            [{"field": "engine", "reason": "must be neonize or sandbox", "source": "body"}],
        )
    return engine


def _login_view(state: LoginState) -> dict[str, Any]:
    view = session_view(state.record)
    view["status"] = state.status
    view["created"] = state.created
    return view


class SessionController(Controller):
    path = "/api/v1/session"
    tags = ["sessions"]

    @route("/create", http_method=["GET", "POST"], status_code=200)
    async def create(self, request: Request[Principal, Any, Any], sessions: Sessions) -> Response[Envelope]:
        """Creates (or resumes) a session and starts a QR login; waits up to 2.5 s for the QR."""
        body = await _body(request)
        name = _session_name(request, body)
        try:
            login = await sessions.login(
                request.user,
                name,
                label=body.label,
                auto_start=body.autoStart is not False,
                engine=_engine(request, body),
            )
        except EngineUnavailable as error:
            raise ApiError(
                Code.INVALID_PARAMETER,
                str(error),
                [{"field": "engine", "reason": str(error), "source": "body"}],
            ) from None
        set_label(request.scope, login.record.label)
        view = _login_view(login)
        if login.status == "open":
            return envelope(Code.SESSION_OPEN, "Session already open", view)
        if login.qr is not None:
            view |= {
                "qrString": login.qr.qr,
                "qr": qr_data_url(login.qr.qr),
                "qrDuration": login.qr.duration_s,
            }
            return envelope(Code.SESSION_QR_REQUIRED, "Scan the QR to continue", view)
        return envelope(Code.SUCCESS, "Session created" if login.created else "Session exists", view)

    @route("/create/pair-code", http_method=["GET", "POST"], status_code=200)
    async def pair_code(
        self, request: Request[Principal, Any, Any], sessions: Sessions, settings: AppSettings
    ) -> Response[Envelope]:
        """Starts a pairing-code login for ``phone``; waits up to 3.5 s for the code."""
        body = await _body(request)
        phone_raw = _pick(request, ("phone", "pair", "pairPhone"), (body.phone, body.pair, body.pairPhone))
        if phone_raw is None:
            raise ApiError(
                Code.MISSING_PARAMETER,
                "phone is required",
                [{"field": "phone", "reason": "missing", "source": "query"}],
            )
        try:
            phone = Jid.parse(phone_raw, settings.default_country_code, "phone")
        except InvalidValue as error:
            raise ApiError(
                Code.INVALID_PARAMETER,
                f"Invalid 'phone': {error.reason}",
                [{"field": "phone", "reason": error.reason, "source": "query"}],
            ) from None
        if phone.phone is None:
            raise ApiError(
                Code.INVALID_PARAMETER,
                "Invalid 'phone': must be a phone number",
                [{"field": "phone", "reason": "must be a phone number", "source": "query"}],
            )
        name = _session_name(request, body)
        try:
            login = await sessions.login(
                request.user,
                name,
                pair_phone=phone.user,
                label=body.label,
                auto_start=body.autoStart is not False,
                engine=_engine(request, body),
            )
        except EngineUnavailable as error:
            raise ApiError(Code.INVALID_PARAMETER, str(error)) from None
        set_label(request.scope, login.record.label)
        view = {"registryUser": login.record.registry, "sessionId": login.record.session_id}
        if login.status == "open":
            return envelope(Code.SESSION_OPEN, "Session already open", view | {"status": "open"})
        if login.pairing_code:
            return envelope(Code.SUCCESS, "Pair code generated", view | {"pairCode": login.pairing_code})
        return envelope(Code.SESSION_LOGIN_PENDING, "Pair code pending", view | {"pairCode": ""})

    @get("/list")
    async def list_sessions(
        self, request: Request[Principal, Any, Any], sessions: Sessions
    ) -> Response[Envelope]:
        records = await sessions.owned(request.user)
        return envelope(
            Code.SUCCESS, f"{len(records)} sessions", {"items": [session_view(r) for r in records]}
        )

    @get("/info")
    async def info(self, request: Request[Principal, Any, Any], sessions: Sessions) -> Response[Envelope]:
        name = _session_name(request, SessionBody())
        record = await sessions.get(request.user, name)
        set_label(request.scope, record.label)
        runtime = sessions.runtime(record)
        outage = runtime.outage if runtime is not None else None
        return envelope(Code.SUCCESS, "Session", {**session_view(record), "outage": outage_view(outage)})

    @route("/logout", http_method=["GET", "POST"], status_code=200)
    async def logout(self, request: Request[Principal, Any, Any], sessions: Sessions) -> Response[Envelope]:
        """Unlinks the device; the session stays (log in again with create)."""
        name = _session_name(request, await _body(request))
        await sessions.logout(request.user, name)
        return envelope(
            Code.SUCCESS, "Logout success", {"sessionId": name, "steps": {"runtime": True, "creds": True}}
        )

    @route("/reconnect", http_method=["GET", "POST"], status_code=200)
    async def reconnect(
        self, request: Request[Principal, Any, Any], sessions: Sessions
    ) -> Response[Envelope]:
        name = _session_name(request, await _body(request))
        try:
            await sessions.reconnect(request.user, name)
        except EngineUnavailable as error:
            raise ApiError(Code.SERVICE_UNAVAILABLE, str(error)) from None
        return envelope(Code.SESSION_RECONNECT_SCHEDULED, "Reconnect scheduled", {"sessionId": name})

    @route("/delete", http_method=["DELETE", "POST"], status_code=200)
    async def delete_session(
        self, request: Request[Principal, Any, Any], sessions: Sessions
    ) -> Response[Envelope]:
        name = _session_name(request, await _body(request))
        await sessions.delete(request.user, name)
        return envelope(
            Code.SUCCESS,
            "Session deleted",
            {"sessionId": name, "steps": {"runtime": True, "creds": True, "meta": True}},
        )

    @get("/devices")
    async def devices(self, request: Request[Principal, Any, Any], sessions: Sessions) -> Response[Envelope]:
        name = _session_name(request, SessionBody())
        record, device = await sessions.device(request.user, name)
        set_label(request.scope, record.label)
        return envelope(
            Code.SUCCESS,
            "Device",
            {
                "name": device.name if device else record.push_name,
                "phone": device.phone if device else None,
                "device": device.platform if device else "WARest",
                "status": record.status,
            },
        )

    @post("/{session_id:str}/config", status_code=200)
    async def config(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        webhooks: Webhooks,
        session_id: FromPath[str],
        data: JSONBody[ConfigBody],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        primary = None
        if data.webhookUrl is not None or data.webhookSecret:
            primary = await enabled_webhooks(webhooks).configure_primary(
                request.user,
                name,
                data.webhookUrl,
                data.webhookSecret,
                preflight=data.preflight or data.preflightVerify,
            )
        record = await sessions.configure(request.user, name, label=data.label, auto_start=data.autoStart)
        set_label(request.scope, record.label)
        view = session_view(record)
        if primary is not None:
            view["webhookUrl"] = primary.endpoint.url
            view["webhook"] = endpoint_view(primary.endpoint, primary.secret)
            view["webhookSecret"] = primary.secret  # only when generated: shown once
        return envelope(Code.SUCCESS, "Config updated", view)


class AdminSessionsController(Controller):
    """Cross-tenant reads: only here, only for admins."""

    path = "/api/v1/admin"
    guards = [admin_only]
    tags = ["admin"]

    @get("/registries/{registry:str}/sessions")
    async def registry_sessions(self, sessions: Sessions, registry: FromPath[str]) -> Response[Envelope]:
        records = await sessions.list_registry(registry)
        return envelope(
            Code.SUCCESS, f"{len(records)} sessions", {"items": [session_view(r) for r in records]}
        )
