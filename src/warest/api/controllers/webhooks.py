"""Webhook endpoints of a session, their delivery log, redelivery, replay and preflight."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from warest.api.codes import Code
from warest.api.dependencies import Webhooks, enabled_webhooks
from warest.api.envelope import Envelope, envelope
from warest.api.params import (
    NAME_MAX,
    POSITION_MAX,
    Body,
    Position,
    invalid,
    page_limit,
    session_param,
)
from warest.app.records import Principal
from warest.app.webhooks import (
    AttemptView,
    DeliveryFilter,
    DeliveryView,
    EndpointView,
    PreflightFailed,
    PreflightResult,
    ReplayRange,
    Saved,
    WebhookService,
)
from warest.domain.errors import InvalidValue
from warest.domain.webhooks import DESCRIPTION_MAX, PRIMARY, URL_MAX

MAX_PAGE = 500

T = TypeVar("T")


SECRET_MAX = 1024
_TEXT_LIMITS = {
    "url": URL_MAX,
    "name": NAME_MAX,
    "secret": SECRET_MAX,
    "events": NAME_MAX,
    "description": DESCRIPTION_MAX,
    "sessionId": NAME_MAX,
}


class EndpointBody(Body, kw_only=True):
    limits = _TEXT_LIMITS

    url: str
    name: str = ""
    secret: str | None = None
    events: list[str] | None = None
    description: str | None = None
    preflight: bool = False


class EndpointPatch(Body, kw_only=True):
    limits = _TEXT_LIMITS

    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class RotateBody(Body, kw_only=True):
    limits = _TEXT_LIMITS

    secret: str | None = None
    graceSeconds: int | None = None  # noqa: N815


class ReplayBody(Body, kw_only=True):
    limits = _TEXT_LIMITS

    fromPosition: Position | None = None  # noqa: N815
    toPosition: Position | None = None  # noqa: N815
    since: datetime | Position | None = None
    until: datetime | Position | None = None
    events: list[str] | None = None


class PreflightBody(Body, kw_only=True):
    limits = _TEXT_LIMITS

    sessionId: str | None = None  # noqa: N815
    url: str | list[str] | None = None
    secret: str | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def endpoint_view(view: EndpointView, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(view.id),
        "name": view.name,
        "url": view.url,
        "events": view.events or [],
        "description": view.description,
        "enabled": view.enabled,
        "disabledReason": view.disabled_reason,
        "disabledBy": view.disabled_by,
        "createdAt": _iso(view.created_at),
        "updatedAt": _iso(view.updated_at),
        "previousSecretValidUntil": _iso(view.previous_until) if view.rotating else None,
        "health": {
            "failures": view.failures or 0,
            "circuitOpenUntil": _iso(view.open_until),
            "coolOffUntil": _iso(view.cooloff_until),
            "lastSuccessAt": _iso(view.last_success_at),
            "lastFailureAt": _iso(view.last_failure_at),
            "lastError": view.last_error,
        },
    }
    if secret is not None:
        out["secret"] = secret  # shown once
    return out


def delivery_view(view: DeliveryView) -> dict[str, Any]:
    return {
        "id": view.delivery_id,
        "endpoint": view.endpoint,
        "endpointId": str(view.endpoint_id),
        "position": view.position,
        "sequence": view.seq,
        "event": view.event,
        "eventId": view.event_id,
        "status": view.status,
        "attempts": view.attempts,
        "lastStatus": view.last_status,
        "lastError": view.last_error,
        "latencyMs": view.latency_ms,
        "replays": view.replays,
        "nextAttemptAt": _iso(view.next_attempt_at),
        "createdAt": _iso(view.created_at),
        "updatedAt": _iso(view.updated_at),
        "deliveredAt": _iso(view.delivered_at),
        "actions": view.actions,
    }


def attempt_view(view: AttemptView) -> dict[str, Any]:
    return {
        "attempt": view.attempt,
        "at": _iso(view.at),
        "status": view.status,
        "latencyMs": view.latency_ms,
        "error": view.error,
    }


def preflight_view(result: PreflightResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": result.target,
        "ok": result.ok,
        "status": result.status,
        "roundTripMs": result.round_trip_ms,
    }
    if result.error:
        out["error"] = result.error
    return out


def _cursor(raw: str | None) -> tuple[int, UUID | None] | None:
    """``before``: ``<position>`` or the ``X-WAREST-Next-Before`` of the page before
    (``<position>:<endpoint id>``)."""
    if raw is None:
        return None
    position, _, endpoint = raw.partition(":")
    try:
        if not (position.isascii() and position.isdigit() and int(position) <= POSITION_MAX):
            raise ValueError(position)
        return int(position), UUID(endpoint) if endpoint else None
    except ValueError:
        raise invalid(
            "before", "must be a position or a X-WAREST-Next-Before value", source="query"
        ) from None


def _ms(value: datetime | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


def _saved(saved: Saved, code: Code, message: str) -> Response[Envelope]:
    return envelope(code, message, endpoint_view(saved.endpoint, saved.secret))


class WebhooksController(Controller):
    path = "/api/v1/session/{session_id:str}"
    tags = ["webhooks"]

    @get("/webhooks")
    async def list_endpoints(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        views = await enabled_webhooks(webhooks).endpoints(request.user, name)
        return envelope(Code.SUCCESS, "Webhooks", [endpoint_view(v) for v in views])

    @post("/webhooks", status_code=201)
    async def add_endpoint(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        data: JSONBody[EndpointBody],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        saved = await enabled_webhooks(webhooks).add(
            request.user,
            name,
            data.name or PRIMARY,
            data.url,
            data.secret,
            data.events,
            data.description,
            preflight=data.preflight,
        )
        return _saved(saved, Code.CREATED, "Webhook added")

    @get("/webhooks/{endpoint:str}")
    async def get_endpoint(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        view = await enabled_webhooks(webhooks).endpoint(request.user, name, endpoint)
        return envelope(Code.SUCCESS, "Webhook", endpoint_view(view))

    @patch("/webhooks/{endpoint:str}")
    async def change_endpoint(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
        data: JSONBody[EndpointPatch],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        view = await enabled_webhooks(webhooks).update(
            request.user,
            name,
            endpoint,
            url=data.url,
            events=data.events,
            description=data.description,
            enabled=data.enabled,
        )
        return envelope(Code.SUCCESS, "Webhook updated", endpoint_view(view))

    @delete("/webhooks/{endpoint:str}", status_code=200)
    async def remove_endpoint(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        await enabled_webhooks(webhooks).remove(request.user, name, endpoint)
        return envelope(Code.SUCCESS, "Webhook removed", {"name": endpoint})

    @post("/webhooks/{endpoint:str}/rotate", status_code=200)
    async def rotate_secret(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
        data: JSONBody[RotateBody],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        saved = await enabled_webhooks(webhooks).rotate(
            request.user, name, endpoint, data.secret, data.graceSeconds
        )
        return _saved(saved, Code.SUCCESS, "Secret rotated")

    @post("/webhooks/{endpoint:str}/reset", status_code=200)
    async def reset_endpoint(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
    ) -> Response[Envelope]:
        """Clears the endpoint's cool-off, open circuit and failure count."""
        name = session_param(session_id, "path")
        view = await enabled_webhooks(webhooks).reset(request.user, name, endpoint)
        return envelope(Code.SUCCESS, "Webhook health reset", endpoint_view(view))

    @post("/webhooks/{endpoint:str}/replay", status_code=202)
    async def replay(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromPath[str],
        data: JSONBody[ReplayBody],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        span = ReplayRange(
            from_position=data.fromPosition,
            to_position=data.toPosition,
            since_ms=_ms(data.since),
            until_ms=_ms(data.until),
            events=tuple(data.events or ()),
        )
        count = await enabled_webhooks(webhooks).replay(request.user, name, endpoint, span)
        return envelope(Code.SCHEDULED, "Replay scheduled", {"endpoint": endpoint, "deliveries": count})

    @get("/deliveries")
    async def deliveries(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        endpoint: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        event: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        page_limit(limit, MAX_PAGE)
        where = DeliveryFilter(status=status, event=event, before=_cursor(before), limit=limit)
        views = await _query(enabled_webhooks(webhooks).deliveries(request.user, name, where, endpoint))
        page = [delivery_view(v) for v in views]
        last = views[-1] if len(views) == limit else None
        headers = {"X-WAREST-Next-Before": f"{last.position}:{last.endpoint_id}"} if last else {}
        return envelope(Code.SUCCESS, "Deliveries", page, headers=headers)

    @get("/deliveries/{delivery:str}")
    async def delivery(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        delivery: FromPath[str],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        view, attempts = await enabled_webhooks(webhooks).delivery(request.user, name, delivery)
        return envelope(
            Code.SUCCESS,
            "Delivery",
            {**delivery_view(view), "attemptLog": [attempt_view(a) for a in attempts]},
        )

    @post("/deliveries/{delivery:str}/redeliver", status_code=202)
    async def redeliver(
        self,
        request: Request[Principal, Any, Any],
        webhooks: Webhooks,
        session_id: FromPath[str],
        delivery: FromPath[str],
    ) -> Response[Envelope]:
        name = session_param(session_id, "path")
        await enabled_webhooks(webhooks).redeliver(request.user, name, delivery)
        return envelope(Code.SCHEDULED, "Redelivery scheduled", {"id": delivery})


SessionQuery = Annotated[str | None, QueryParameter(name="sessionId")]


async def preflight(
    request: Request[Principal, Any, Any], webhooks: WebhookService | None, data: PreflightBody
) -> Response[Envelope]:
    name = session_param(data.sessionId, "body")
    urls = [data.url] if isinstance(data.url, str) else list(data.url or [])
    if not urls:
        raise invalid("url", "is required (a URL or a list of URLs)", code=Code.MISSING_PARAMETER)
    if not data.secret:
        raise invalid("secret", "is required", code=Code.MISSING_PARAMETER)
    results = await enabled_webhooks(webhooks).preflight(request.user, name, urls, data.secret)
    ok = all(r.ok for r in results)
    return envelope(
        Code.SUCCESS if ok else Code.PARTIAL_SUCCESS,
        "Preflight passed" if ok else "Preflight failed",
        [preflight_view(r) for r in results],
    )


@post("/api/v1/webhook/preflight", status_code=200, tags=["webhooks"])
async def preflight_v1(
    request: Request[Principal, Any, Any], webhooks: Webhooks, data: JSONBody[PreflightBody]
) -> Response[Envelope]:
    return await preflight(request, webhooks, data)


@post("/api/webhooks/preflight", status_code=200, tags=["webhooks"])
async def preflight_legacy(
    request: Request[Principal, Any, Any], webhooks: Webhooks, data: JSONBody[PreflightBody]
) -> Response[Envelope]:
    return await preflight(request, webhooks, data)


async def _query(awaitable: Awaitable[T]) -> T:
    """A bad value of a query parameter names the query as its source."""
    try:
        return await awaitable
    except InvalidValue as error:
        raise invalid(error.field, error.reason, source="query") from None


def preflight_failed_handler(_: Request[Any, Any, Any], error: PreflightFailed) -> Response[Envelope]:
    """A URL saved with ``preflight: true`` whose preflight failed: nothing was saved."""
    return envelope(Code.BAD_REQUEST, "Webhook preflight failed", [preflight_view(error.result)])
