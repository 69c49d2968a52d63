"""PostgreSQL adapters of the webhook ports: the dispatcher's store and the API's queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from warest.app.webhook_dispatch import Delivery, Health, Outcome, Target
from warest.app.webhook_events import delivery_id
from warest.app.webhooks import (
    AttemptView,
    DeliveryFilter,
    DeliveryView,
    EndpointView,
    ReplayRange,
    SecretBox,
)
from warest.domain.text import safe, safe_json, safe_optional

OUTBOX = "webhook_outbox"
MIN_UUID = UUID(int=0)  # a bare position as cursor: rows before that position

_DELIVERY_SELECT = (
    "SELECT d.queue_id, d.endpoint_id, d.position, d.delivery_id, d.session_id, d.event, e.event_id,"
    " e.seq, e.ts, e.registry, e.session, e.label, e.username, e.body, d.attempts, d.next_attempt_at"
    " FROM wh_deliveries d JOIN wh_events e ON e.position = d.position"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(*row)


class PgDeliveryStore:
    def __init__(self, pool: asyncpg.Pool, secrets: SecretBox) -> None:
        self._pool = pool
        self._secrets = secrets

    async def pending_after(self, queue_id: int, limit: int) -> list[Delivery]:
        rows = await self._pool.fetch(
            f"{_DELIVERY_SELECT} WHERE d.status = 'pending' AND d.queue_id > $1 ORDER BY d.queue_id LIMIT $2",
            queue_id,
            limit,
        )
        return [_delivery(r) for r in rows]

    async def lane_after(
        self, endpoint_id: UUID | None, session_id: UUID, queue_id: int, limit: int
    ) -> list[Delivery]:
        endpoint = "" if endpoint_id is None else " AND d.endpoint_id = $4"
        args: list[Any] = [session_id, queue_id, limit] + ([endpoint_id] if endpoint_id is not None else [])
        rows = await self._pool.fetch(
            f"{_DELIVERY_SELECT} WHERE d.status = 'pending' AND d.session_id = $1"
            f" AND d.queue_id > $2{endpoint} ORDER BY d.queue_id LIMIT $3",
            *args,
        )
        return [_delivery(r) for r in rows]

    async def unheld_lanes(self, upto: int) -> list[tuple[UUID, UUID]]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT d.endpoint_id, d.session_id FROM wh_deliveries d"
            " LEFT JOIN wh_endpoints w ON w.id = d.endpoint_id"
            " WHERE d.status = 'pending' AND d.queue_id <= $1"
            " AND (w.id IS NULL OR (w.enabled AND NOT w.removed))",
            upto,
        )
        return [(r[0], r[1]) for r in rows]

    async def target(self, endpoint_id: UUID) -> Target | None:
        row = await self._pool.fetchrow(
            "SELECT id, url, secret_sealed, previous_secret_sealed, previous_until, enabled, removed"
            " FROM wh_endpoints WHERE id = $1",
            endpoint_id,
        )
        if row is None:
            return None
        secrets = [self._secrets.open(row["secret_sealed"])]
        until = row["previous_until"]
        if row["previous_secret_sealed"] and until is not None and until > datetime.now(until.tzinfo):
            secrets.append(self._secrets.open(row["previous_secret_sealed"]))
        return Target(row["id"], row["url"], tuple(secrets), row["enabled"], row["removed"])

    async def record(self, outcomes: list[Outcome]) -> None:
        last = {(o.endpoint_id, o.position): o for o in outcomes}  # one UPDATE row per delivery
        latest = list(last.values())
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE wh_deliveries AS d SET status = u.status, attempts = u.attempt,"
                " next_attempt_at = u.next_at, last_status = u.http, last_error = u.error,"
                " latency_ms = u.latency, updated_at = u.at,"
                " delivered_at = CASE WHEN u.status = 'delivered' THEN u.at ELSE d.delivered_at END"
                " FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::timestamptz[],"
                " $6::int4[], $7::int4[], $8::text[], $9::timestamptz[])"
                " AS u(endpoint_id, position, status, attempt, at, http, latency, error, next_at)"
                " WHERE d.endpoint_id = u.endpoint_id AND d.position = u.position",
                *_columns(
                    latest,
                    (
                        "endpoint_id",
                        "position",
                        "status",
                        "attempt",
                        "at",
                        "http_status",
                        "latency_ms",
                        "error",
                        "next_attempt_at",
                    ),
                ),
            )
            await conn.execute(
                "INSERT INTO wh_attempts (endpoint_id, position, attempt, at, status, latency_ms, error)"
                " SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int4[], $4::timestamptz[], $5::int4[],"
                " $6::int4[], $7::text[])",
                *_columns(
                    outcomes,
                    ("endpoint_id", "position", "attempt", "at", "http_status", "latency_ms", "error"),
                ),
            )

    async def record_actions(self, endpoint_id: UUID, position: int, report: list[dict[str, Any]]) -> None:
        await self._pool.execute(
            "UPDATE wh_deliveries SET actions = $3::jsonb WHERE endpoint_id = $1 AND position = $2",
            endpoint_id,
            position,
            json.dumps(safe_json(report)),  # jsonb refuses NUL as well
        )

    async def health(self) -> dict[UUID, Health]:
        rows = await self._pool.fetch(
            "SELECT endpoint_id, failures, open_until, cooloff_until, last_success_at, last_failure_at,"
            " last_error FROM wh_endpoint_health"
        )
        return {r[0]: Health(*r[1:]) for r in rows}

    async def save_health(self, endpoint_id: UUID, health: Health) -> None:
        await self._pool.execute(
            "INSERT INTO wh_endpoint_health (endpoint_id, failures, open_until, cooloff_until,"
            " last_success_at, last_failure_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (endpoint_id) DO UPDATE SET failures = EXCLUDED.failures,"
            " open_until = EXCLUDED.open_until, cooloff_until = EXCLUDED.cooloff_until,"
            " last_success_at = EXCLUDED.last_success_at, last_failure_at = EXCLUDED.last_failure_at,"
            " last_error = EXCLUDED.last_error",
            endpoint_id,
            health.failures,
            health.open_until,
            health.cooloff_until,
            health.last_success_at,
            health.last_failure_at,
            safe_optional(health.last_error),
        )


def _columns(items: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    """Column arrays of ``items``; text made ``safe`` (errors may quote what a receiver said)."""
    return [[_safe_value(getattr(item, name)) for item in items] for name in names]


def _safe_value(value: Any) -> Any:
    return safe(value) if isinstance(value, str) else value


_ENDPOINT_VIEW = (
    "SELECT w.id, w.name, w.url, string_to_array(NULLIF(w.events, ''), ',') AS events, w.description,"
    " w.enabled, w.disabled_reason, w.disabled_by, w.created_at, w.updated_at,"
    " (w.previous_secret_sealed IS NOT NULL AND w.previous_until > now()) AS rotating, w.previous_until,"
    " h.failures, h.open_until, h.cooloff_until, h.last_success_at, h.last_failure_at, h.last_error"
    " FROM wh_endpoints w LEFT JOIN wh_endpoint_health h ON h.endpoint_id = w.id"
)
_DELIVERY_VIEW = (
    "SELECT d.delivery_id, d.endpoint_id, w.name AS endpoint, d.position, e.seq, d.event, e.event_id,"
    " d.status, d.attempts, d.last_status, d.last_error, d.latency_ms, d.replays, d.next_attempt_at,"
    " d.created_at, d.updated_at, d.delivered_at, d.actions"
    " FROM wh_deliveries d JOIN wh_events e ON e.position = d.position"
    " LEFT JOIN wh_endpoints w ON w.id = d.endpoint_id"
)


def _delivery_view(row: Any) -> DeliveryView:
    values = dict(row)
    values["endpoint"] = values["endpoint"] or "default"
    values["actions"] = json.loads(values["actions"]) if values["actions"] else None
    return DeliveryView(**values)


class PgWebhookQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def endpoints(self, session_id: UUID) -> list[EndpointView]:
        rows = await self._pool.fetch(
            f"{_ENDPOINT_VIEW} WHERE w.session_id = $1 AND NOT w.removed ORDER BY w.created_at, w.name",
            session_id,
        )
        return [EndpointView(**dict(r)) for r in rows]

    async def deliveries(self, session_id: UUID, where: DeliveryFilter) -> list[DeliveryView]:
        clauses, args = ["d.session_id = $1"], list[Any]([session_id])
        for column, value in (
            ("d.endpoint_id", where.endpoint_id),
            ("d.status", where.status),
            ("d.event", where.event),
        ):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        if where.before is not None:
            position, endpoint = where.before
            args.extend([position, endpoint or MIN_UUID])
            clauses.append(f"(d.position, d.endpoint_id) < (${len(args) - 1}, ${len(args)})")
        args.append(where.limit)
        rows = await self._pool.fetch(
            f"{_DELIVERY_VIEW} WHERE {' AND '.join(clauses)} ORDER BY d.position DESC, d.endpoint_id DESC"
            f" LIMIT ${len(args)}",
            *args,
        )
        return [_delivery_view(r) for r in rows]

    async def delivery(
        self, session_id: UUID, delivery: str
    ) -> tuple[DeliveryView, list[AttemptView]] | None:
        row = await self._pool.fetchrow(
            f"{_DELIVERY_VIEW} WHERE d.session_id = $1 AND d.delivery_id = $2", session_id, delivery
        )
        if row is None:
            return None
        attempts = await self._pool.fetch(
            "SELECT attempt, at, status, latency_ms, error FROM wh_attempts"
            " WHERE endpoint_id = $1 AND position = $2 ORDER BY id",
            row["endpoint_id"],
            row["position"],
        )
        return _delivery_view(row), [AttemptView(**dict(a)) for a in attempts]

    async def reset_health(self, endpoint_id: UUID) -> None:
        """Clears the endpoint's failures, open circuit and cool-off (kept: the last success,
        failure and error). The dispatcher notices it at its next sweep."""
        await self._pool.execute(
            "UPDATE wh_endpoint_health SET failures = 0, open_until = NULL, cooloff_until = NULL"
            " WHERE endpoint_id = $1",
            endpoint_id,
        )

    async def redeliver(self, session_id: UUID, delivery: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock_outbox(conn)
            done = await conn.execute(
                "UPDATE wh_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL,"
                " queue_id = nextval('wh_queue'), replays = replays + 1, updated_at = now()"
                " WHERE session_id = $1 AND delivery_id = $2",
                session_id,
                delivery,
            )
        return bool(done.endswith(" 1"))

    async def replay(self, endpoint_id: UUID, session_id: UUID, span: ReplayRange) -> int:
        """Enqueues again (or for the first time) the session's events in ``span`` for one
        endpoint, with the same delivery ids; in log order, at the end of the lane."""
        clauses, args = ["session_id = $1"], list[Any]([session_id])
        for clause, value in (
            ("position >= ${}", span.from_position),
            ("position <= ${}", span.to_position),
            ("ts >= ${}", span.since_ms),
            ("ts <= ${}", span.until_ms),
        ):
            if value is not None:
                args.append(value)
                clauses.append(clause.format(len(args)))
        if span.events:
            args.append(list(span.events))
            clauses.append(f"event = ANY(${len(args)}::text[])")
        args.append(span.limit)
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock_outbox(conn)
            rows = await conn.fetch(
                f"SELECT position, event_id, event FROM wh_events WHERE {' AND '.join(clauses)}"
                f" ORDER BY position LIMIT ${len(args)}",
                *args,
            )
            if not rows:
                return 0
            await conn.execute(
                "INSERT INTO wh_deliveries (endpoint_id, position, delivery_id, session_id, event,"
                " created_at, updated_at)"
                " SELECT $1, u.position, u.delivery_id, $2, u.event, now(), now()"
                " FROM unnest($3::int8[], $4::text[], $5::text[]) WITH ORDINALITY"
                " AS u(position, delivery_id, event, n)"
                " ORDER BY u.n"
                " ON CONFLICT (endpoint_id, position) DO UPDATE SET status = 'pending', attempts = 0,"
                " next_attempt_at = NULL, queue_id = nextval('wh_queue'),"
                " replays = wh_deliveries.replays + 1, updated_at = now()",
                endpoint_id,
                session_id,
                [r["position"] for r in rows],
                [delivery_id(endpoint_id, r["event_id"]) for r in rows],
                [r["event"] for r in rows],
            )
        return len(rows)


async def _lock_outbox(conn: Any) -> None:
    """Queue ids are taken under the outbox's lock, so they become visible in their order
    (the dispatcher reads new deliveries by increasing queue id)."""
    await conn.execute("SELECT position FROM projection_tracking WHERE name = $1 FOR UPDATE", OUTBOX)
