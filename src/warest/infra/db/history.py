"""The event history over asyncpg: the event log joined on stream ownership (``rm_streams``).

One statement reads the ``streams`` read model's position (the horizon) and the events at
or below it, so both come from the same snapshot: an event whose stream is not projected
yet is above the horizon, and a cursor that stops at the horizon never skips it.

Time filters read the event's own ``timestamp`` from its JSON state (cast to
``timestamptz``, so RFC 3339 strings with or without fractions compare correctly; a
``\u0000`` escape, which jsonb refuses, is replaced first). Only the
events of the selected registry after the cursor are examined.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from warest.app.history import EventBatch, HistoryQuery, LoggedEvent, UnreadableEvent

STREAMS_PROJECTION = "streams"
_HORIZON = (
    f"SELECT COALESCE((SELECT position FROM projection_tracking WHERE name = '{STREAMS_PROJECTION}'), 0)"
)
# jsonb refuses the \u0000 escape, which a text WhatsApp sent may hold (recorded as received):
# it is replaced before the cast, which only reads the timestamp.
_EVENT_TIME = (
    "(replace(convert_from(e.state, 'UTF8'), '\\u0000', '\\ufffd')::jsonb ->> 'timestamp')::timestamptz"
)


def build_sql(query: HistoryQuery, upper: int | None) -> tuple[str, list[Any]]:
    """The statement and its arguments ($1 = after, $2 = limit, then the filters).

    The plan is fixed on purpose: walk the log in position order from the cursor, look
    each event's stream up by primary key (a fenced lateral subquery, so the planner does
    not hash the whole range), and parse the JSON state for time filters only for events
    that passed the cheaper filters. The walk stops as soon as ``limit`` events matched.
    """
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args) + 2}"

    log = ["e.notification_id > $1", "e.notification_id <= h.horizon"]
    if upper is not None:
        log.append(f"e.notification_id <= {arg(upper)}::bigint")
    if query.topics:
        log.append(f"e.topic = ANY({arg(list(query.topics))}::text[])")
    owner = ["s.stream_id = e.originator_id"]
    if query.registry is not None:
        owner.append(f"s.registry = {arg(query.registry)}")
    if query.session is not None:
        owner.append(f"s.session_id = {arg(query.session)}")
    timing = ["true"]
    if query.since is not None:
        timing.append(f"{_EVENT_TIME} >= {arg(query.since)}")
    if query.until is not None:
        timing.append(f"{_EVENT_TIME} < {arg(query.until)}")
    sql = (
        f"WITH h AS ({_HORIZON} AS horizon)"
        " SELECT h.horizon, ev.* FROM h LEFT JOIN LATERAL ("
        " SELECT e.* FROM ("
        " SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
        " s.registry, s.session_id FROM warest_events e"
        " CROSS JOIN LATERAL (SELECT s.registry, s.session_id FROM rm_streams s"
        f" WHERE {' AND '.join(owner)} OFFSET 0) s"
        f" WHERE {' AND '.join(log)} ORDER BY e.notification_id OFFSET 0) e"
        f" WHERE {' AND '.join(timing)} ORDER BY e.notification_id LIMIT $2"
        ") ev ON true ORDER BY ev.notification_id"
    )
    return sql, args


class _Stamp(msgspec.Struct):
    timestamp: datetime = datetime.min.replace(tzinfo=UTC)


def _unreadable(stored: StoredEvent, error: MapperDeserialisationError) -> UnreadableEvent:
    try:
        stamp = msgspec.json.decode(stored.state, type=_Stamp).timestamp
    except msgspec.MsgspecError:
        stamp = _Stamp().timestamp
    return UnreadableEvent(name=stored.topic.partition(":")[2], timestamp=stamp, reason=str(error))


class PgEventHistory:
    """``HistoryQueries`` over asyncpg. The SQL only pages and filters; what an event says
    is always the store's mapper's decode (upcast to the current shape). An event that does
    not decode (a newer release's) is listed as ``UnreadableEvent``."""

    def __init__(self, pool: asyncpg.Pool, mapper: Mapper[Any]) -> None:
        self._pool = pool
        self._mapper = mapper

    async def events(
        self, query: HistoryQuery, after: int, limit: int, upper: int | None = None
    ) -> EventBatch:
        sql, args = build_sql(query, upper)
        rows = await self._pool.fetch(sql, after, limit, *args)
        horizon = int(rows[0]["horizon"]) if rows else 0
        return EventBatch(
            events=[self._logged(row) for row in rows if row["notification_id"] is not None],
            horizon=horizon,
        )

    async def horizon(self) -> int:
        value = await self._pool.fetchval(_HORIZON)
        return int(value or 0)

    def _logged(self, row: Any) -> LoggedEvent:
        stored = StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        event: Any
        try:
            event = self._mapper.to_domain_event(stored)
        except MapperDeserialisationError as error:
            event = _unreadable(stored, error)
        return LoggedEvent(
            position=row["notification_id"],
            stream_id=row["originator_id"],
            version=row["originator_version"],
            registry=row["registry"],
            session=row["session_id"],
            event=event,
        )
