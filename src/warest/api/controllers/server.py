"""Server routes: public ping and probes, admin-only details."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get

from warest.api.auth import admin_only, docs_guard
from warest.api.codes import Code, code_table
from warest.api.dependencies import AppSettings, Health, Parked, Version
from warest.api.envelope import Envelope, envelope

_STARTED = time.monotonic()


@get("/api/v1/server/ping", opt={"public": True}, tags=["server"])
async def ping(request: Request[Any, Any, Any]) -> Response[Envelope]:
    """Liveness of the HTTP layer; public (used by container health checks)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    return envelope(
        Code.SUCCESS,
        "Server is alive",
        {
            "ping": "pong",
            "latencyMs": round((time.perf_counter() - started) * 1000, 3),
            "serverTime": int(now.timestamp() * 1000),
            "serverTimeISO": now.isoformat(),
            "serverTimeUTC": now.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "timezone": "UTC",
            "timestamp": int(now.timestamp()),
        },
    )


async def health_report(health: Health, parked: Parked) -> Response[Envelope]:
    checks = await health()
    counts = {} if parked is None else dict(parked.counts())
    healthy = all(checks.values())
    status = ("degraded" if counts else "healthy") if healthy else "unhealthy"
    message = f"degraded: {sum(counts.values())} parked events" if healthy and counts else status
    return envelope(
        Code.SUCCESS if healthy else Code.SERVICE_UNAVAILABLE,
        message,
        {"status": status, "checks": checks, "parked": counts},
    )


async def readiness(health: Health) -> Response[Envelope]:
    checks = await health()
    ok = all(checks.values())
    return envelope(
        Code.SUCCESS if ok else Code.SERVICE_UNAVAILABLE,
        "ready" if ok else "not ready",
        {"ready": ok, "dependencies": checks},
    )


@get("/healthz", opt={"public": True}, tags=["server"])
async def healthz(health: Health, parked: Parked) -> Response[Envelope]:
    """Public liveness: answers while the process serves HTTP; reports dependency state.

    Parked events (events a read model could not apply and moved past) make it
    ``degraded``, still ``200``: the read models follow the log, and a load balancer that
    accepts only 200 must not take the gateway out for one tenant's bad event."""
    return await health_report(health, parked)


@get("/ready", opt={"public": True}, tags=["server"])
async def ready(health: Health) -> Response[Envelope]:
    """Public readiness: 200 only when the database answers and projections run."""
    return await readiness(health)


class ServerAdminController(Controller):
    path = "/api/v1/server"
    guards = [admin_only]
    tags = ["server"]

    @get("/info")
    async def info(self, settings: AppSettings, version: Version, health: Health) -> Response[Envelope]:
        uptime = time.monotonic() - _STARTED
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        return envelope(
            Code.SUCCESS,
            "Server info",
            {
                "serviceName": settings.server_name,
                "serviceVersion": version,
                "uptimeSeconds": int(uptime),
                "system": {
                    "hostname": platform.node(),
                    "platform": platform.system().lower(),
                    "arch": platform.machine(),
                    "release": platform.release(),
                },
                "process": {"pid": os.getpid(), "python": platform.python_version()},
                "loadAverage": list(load),
                "database": "embedded" if settings.embedded_database else "external",
                "engine": settings.engine,
                "checks": await health(),
                "timestamp": int(time.time()),
            },
        )

    @get("/healthz")
    async def healthz(self, health: Health, parked: Parked) -> Response[Envelope]:
        return await health_report(health, parked)

    @get("/ready")
    async def ready(self, health: Health) -> Response[Envelope]:
        return await readiness(health)


@get("/docs/code-table.json", opt={"public": True}, guards=[docs_guard], tags=["docs"])
async def code_table_route() -> list[dict[str, object]]:
    """The application codes used in the envelope."""
    return code_table()
