"""``/api/v1/events``: the caller's event history, paged or followed live (Server-Sent Events)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from warest.api.auth import header_key
from warest.api.codes import Code
from warest.api.dependencies import History, Users
from warest.api.envelope import Envelope, envelope
from warest.api.params import int_param, invalid
from warest.app.history import DEFAULT_LIMIT, MAX_LIMIT, HistoryItem
from warest.app.records import Principal
from warest.domain.errors import InvalidValue

NEXT_AFTER_HEADER = "X-WAREST-Next-After"
LAST_EVENT_ID = "Last-Event-ID"


def _when(raw: str | None, field: str) -> datetime | None:
    """An ISO-8601 date or date-time; without an offset it is UTC. A '+' that the query
    string turned into a space is taken back."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    for candidate in (text, text.replace(" ", "+")):
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    raise invalid(field, "must be an ISO-8601 date or date-time (e.g. 2026-01-31T12:00:00Z)", source="query")


def _filters(request: Request[Any, Any, Any]) -> dict[str, Any]:
    query = request.query_params
    return {
        "session": query.get("session") or None,
        "types": query.getall("type", []),
        "since": _when(query.get("from"), "from"),
        "until": _when(query.get("to"), "to"),
    }


def _field(name: str) -> str:
    """Service fields named as the query parameters are."""
    return {"since": "from", "until": "to"}.get(name, name)


async def _messages(
    batches: AsyncIterator[list[HistoryItem]], still_allowed: Callable[[], Awaitable[bool]], every_s: float
) -> AsyncIterator[ServerSentEventMessage]:
    """Events as SSE messages; the caller's key is checked again every ``every_s`` and the
    stream ends once it is no longer valid (rotated, or the user disabled)."""
    checked = time.monotonic()
    async for batch in batches:
        if time.monotonic() - checked >= every_s:
            if not await still_allowed():
                return
            checked = time.monotonic()
        if not batch:
            yield ServerSentEventMessage(comment="heartbeat", data=None)
        for item in batch:
            yield ServerSentEventMessage(
                id=item.position, event=item.type, data=msgspec.json.encode(item).decode()
            )


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["events"]
    heartbeat_s: float = 15.0

    @get()
    async def list_events(
        self, request: Request[Principal, Any, Any], history: History
    ) -> Response[Envelope]:
        """The caller's events after ``after``, oldest first (``limit`` 1-1000, default 100).

        Filters: ``session``, ``type`` (repeatable or comma-separated), ``from`` (inclusive)
        and ``to`` (exclusive). The next cursor is in the ``X-WAREST-Next-After`` header.
        """
        query = request.query_params
        after = int_param(query.get("after"), "after", 0)
        limit = int_param(query.get("limit"), "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        try:
            items = await history.page(request.user, after, limit, **_filters(request))
        except InvalidValue as error:
            raise invalid(_field(error.field), error.reason, source="query") from None
        next_after = items[-1].position if items else after
        return envelope(
            Code.SUCCESS, f"{len(items)} events", items, headers={NEXT_AFTER_HEADER: str(next_after)}
        )

    @get("/stream")
    async def stream(
        self, request: Request[Principal, Any, Any], history: History, users: Users
    ) -> ServerSentEvent:
        """Server-Sent Events: the caller's events after ``Last-Event-ID`` (or ``after``), then
        live. Each event has ``id`` = position, ``event`` = type, ``data`` = the item as JSON;
        a ``: heartbeat`` comment is sent every 15 s of silence. The key is checked again at
        that pace: the stream ends when it was rotated or the user disabled."""
        after = int_param(request.query_params.get("after"), "after", 0)
        after = int_param(request.headers.get(LAST_EVENT_ID), LAST_EVENT_ID, after, source="header")
        try:
            batches = await history.follow(
                request.user, after, heartbeat_s=self.heartbeat_s, **_filters(request)
            )
        except InvalidValue as error:
            source = "header" if error.field == "after" and LAST_EVENT_ID in request.headers else "query"
            field = LAST_EVENT_ID if source == "header" else _field(error.field)
            raise invalid(field, error.reason, source=source) from None
        key = header_key(request) or ""

        async def still_allowed() -> bool:
            principal = await users.authenticate_key(key)
            return principal is not None and principal.user_id == request.user.user_id

        return ServerSentEvent(_messages(batches, still_allowed, self.heartbeat_s))
