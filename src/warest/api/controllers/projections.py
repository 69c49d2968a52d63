"""Admin routes for the read models' parked events (events a projection could not apply)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromQuery

from warest.api.auth import admin_only
from warest.api.codes import Code
from warest.api.dependencies import Parked, enabled_parked
from warest.api.envelope import Envelope, envelope
from warest.api.params import invalid
from warest.app.parking import ParkedEvent, ParkedEvents

LIMIT_MAX = 1000


def _projection(parked: ParkedEvents, name: str | None) -> str | None:
    if name is not None and name not in parked.names():
        known = ", ".join(parked.names())
        raise invalid("projection", f"unknown read model (known: {known})", source="query")
    return name


def parked_view(event: ParkedEvent) -> dict[str, Any]:
    return {
        "projection": event.projection,
        "position": event.position,
        "originatorId": event.originator_id,
        "originatorVersion": event.originator_version,
        "topic": event.topic,
        "error": event.error,
        "parkedAt": event.parked_at.isoformat(),
        "attempts": event.attempts,
        "retriedAt": event.retried_at.isoformat() if event.retried_at else None,
    }


class ProjectionsAdminController(Controller):
    """Parked events: listed, and applied again after a fix (``warest projections retry-parked``)."""

    path = "/api/v1/admin/projections"
    guards = [admin_only]
    tags = ["admin"]

    @get("/parked")
    async def parked(
        self,
        parked: Parked,
        projection: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> Response[Envelope]:
        events_of = enabled_parked(parked)
        name = _projection(events_of, projection)
        if not 1 <= limit <= LIMIT_MAX:
            raise invalid("limit", f"must be between 1 and {LIMIT_MAX}", source="query")
        events = await events_of.events(name, limit)
        return envelope(
            Code.SUCCESS,
            f"{len(events)} parked events",
            {"counts": await events_of.tally(), "items": [parked_view(e) for e in events]},
        )

    @post("/parked/retry", status_code=200)
    async def retry(self, parked: Parked, projection: FromQuery[str | None] = None) -> Response[Envelope]:
        events_of = enabled_parked(parked)
        outcomes = await events_of.retry(_projection(events_of, projection))
        applied = sum(o.applied for o in outcomes)
        failed = sum(o.failed for o in outcomes)
        return envelope(
            Code.SUCCESS,
            f"{applied} parked events applied, {failed} still failing",
            {
                "applied": applied,
                "failed": failed,
                "projections": [
                    {"projection": o.projection, "applied": o.applied, "failed": o.failed} for o in outcomes
                ],
            },
        )
