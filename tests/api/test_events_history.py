"""The event history API: owner-scoped pages with filters and cursors, no secrets, and a
Server-Sent Events stream that resumes from Last-Event-ID without loss or repetition.

Every event is produced through the app (users, sandbox sessions, sends), never inserted.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant
from tests.conftest import admin_headers, create_user, db_rows
from warest.api.controllers.events import EventsController
from warest.app.history import EVENT_TYPES
from warest.asgi import create_litestar
from warest.config import Settings

Client = AsyncTestClient[Any] | httpx.AsyncClient


async def page(client: Client, headers: dict[str, str], **params: Any) -> tuple[list[dict[str, Any]], int]:
    response = await client.get("/api/v1/events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"], int(response.headers["x-warest-next-after"])


async def everything(client: Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items, _ = await page(client, headers, limit=1000, **params)
    assert len(items) < 1000
    return items


async def traffic(client: Client) -> tuple[dict[str, str], dict[str, str]]:
    """Two tenants with a session named "main" each, talking to each other and to an
    external account; returns their headers once every receipt has arrived."""
    a, b = await tenant(client, "hist-a"), await tenant(client, "hist-b")
    await open_by_scan(client, a, "main", "6288100000001")
    await open_by_scan(client, b, "main", "6288100000002")
    await client.post("/api/v1/sandbox/accounts", json={"phone": "6288100000009"}, headers=a)
    assert (await send_text(client, a, "main", "6288100000002", "hello B")).status_code == 200
    assert (await send_text(client, b, "main", "6288100000001", "hello A")).status_code == 200
    assert (await send_text(client, a, "main", "6288100000009", "hello C")).status_code == 200

    async def settled() -> bool:
        # A's two messages get server + delivered receipts each, B's one message too; then
        # nothing more may arrive (the pages are compared with later reads).
        kinds_a = [i["type"] for i in await everything(client, a)]
        kinds_b = [i["type"] for i in await everything(client, b)]
        if not (
            kinds_a.count("Message.StatusChanged") >= 4
            and kinds_b.count("Message.StatusChanged") >= 2
            and "Message.Received" in kinds_a
            and "Message.Received" in kinds_b
        ):
            return False
        await asyncio.sleep(0.3)
        return kinds_a == [i["type"] for i in await everything(client, a)] and kinds_b == [
            i["type"] for i in await everything(client, b)
        ]

    await eventually(settled)
    return a, b


async def owned_positions(settings: Settings, registry: str) -> list[int]:
    """Ground truth from the database: positions of every event of the registry's streams."""
    rows = await db_rows(
        settings,
        "SELECT e.notification_id FROM warest_events e JOIN rm_streams s ON s.stream_id = e.originator_id"
        " WHERE s.registry = $1 ORDER BY e.notification_id",
        registry,
    )
    return [r["notification_id"] for r in rows]


async def registry_of(client: Client, headers: dict[str, str]) -> str:
    return str((await client.get("/api/v1/users/me", headers=headers)).json()["results"][0]["registry"])


async def test_tenants_see_only_their_own_events(client: AsyncTestClient[Any], settings: Settings) -> None:
    a, b = await traffic(client)
    items_a, items_b = await everything(client, a), await everything(client, b)
    assert items_a and items_b
    assert {i["streamId"] for i in items_a}.isdisjoint({i["streamId"] for i in items_b})
    assert [i["position"] for i in items_a] == await owned_positions(settings, await registry_of(client, a))
    assert [i["position"] for i in items_b] == await owned_positions(settings, await registry_of(client, b))
    registered = [i for i in items_b if i["type"] == "User.Registered"]
    assert [i["data"]["username"] for i in registered] == ["hist-b"]
    # A's message to B is B's own Received event; A's Queued/Sent/receipts never reach B.
    received_b = [i for i in items_b if i["type"] == "Message.Received"]
    assert [i["data"]["text"] for i in received_b] == ["hello B"]
    assert "hello C" not in str(items_b)
    queued_b = [i["data"]["text"] for i in items_b if i["type"] == "Message.Queued"]
    assert queued_b == ["hello A"]
    # Not even a cursor placed right before one of A's events shows it to B.
    positions_b = {i["position"] for i in items_b}
    for item in items_a:
        found, _ = await page(client, b, after=item["position"] - 1, limit=1)
        assert all(f["position"] != item["position"] for f in found)
        assert all(f["position"] in positions_b for f in found)
    # Same session name, two tenants: the session filter stays within the caller's registry.
    only_main_b = await everything(client, b, session="main")
    assert only_main_b and {i["streamId"] for i in only_main_b} <= {i["streamId"] for i in items_b}
    # The admin sees its own registry only, like any tenant.
    admin_items = await everything(client, admin_headers())
    assert {i["streamId"] for i in admin_items}.isdisjoint({i["streamId"] for i in items_a + items_b})


async def test_item_shape_and_type_names(client: AsyncTestClient[Any]) -> None:
    a, _ = await traffic(client)
    items = await everything(client, a)
    assert set(items[0]) == {"position", "streamId", "version", "type", "time", "session", "data"}
    assert items[0]["type"] == "User.Registered" and items[0]["session"] is None
    assert all(i["type"] in EVENT_TYPES for i in items)
    assert not any(i["type"].startswith("Claim.") for i in items)
    opened = next(i for i in items if i["type"] == "Session.Opened")
    assert opened["data"]["jid"] == "6288100000001@s.whatsapp.net" and opened["session"] == "main"
    assert not {"originator_id", "originator_version", "timestamp"} & set(opened["data"])
    # Versions are gap-free per stream; positions strictly increase.
    by_stream: dict[str, list[int]] = {}
    for item in items:
        by_stream.setdefault(item["streamId"], []).append(item["version"])
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())
    positions = [i["position"] for i in items]
    assert positions == sorted(set(positions))
    # QR strings are login secrets: the log records only that a QR was shown.
    qr = next(i for i in items if i["type"] == "Session.QrIssued")
    assert qr["data"] == {"duration_s": 20, "attempt": 1}


async def test_secrets_never_appear(client: AsyncTestClient[Any]) -> None:
    alice = await create_user(client, "alice-h", password="alice-password-1")
    rotated = await client.post("/api/v1/users/alice-h/rotate-key", headers=admin_headers())
    headers = {"X-WAREST-API-KEY": rotated.json()["results"][0]["apiKey"]}
    response = await client.get("/api/v1/events", headers=headers)
    items = response.json()["results"]
    assert [i["type"] for i in items] == ["User.Registered", "User.ApiKeyRotated"]
    assert items[0]["data"] == {"username": "alice-h", "registry": alice["registry"], "role": "user"}
    assert items[1]["data"] == {}
    admin = await client.get("/api/v1/events", headers=admin_headers())  # seeded with a password and key
    for text in (response.text, admin.text):
        assert "password_hash" not in text and "api_key_digest" not in text and "$argon2" not in text


async def test_filters_session_type_and_time(client: AsyncTestClient[Any]) -> None:
    a, _ = await traffic(client)
    await client.post("/api/v1/session/create", json={"sessionId": "other"}, headers=a)

    async def qr_shown() -> bool:  # the engine issues the first QR a moment after the answer
        return "Session.QrIssued" in [i["type"] for i in await everything(client, a, session="other")]

    await eventually(qr_shown)
    items = await everything(client, a)

    assert await everything(client, a, session="main") == [i for i in items if i["session"] == "main"]
    other = await everything(client, a, session="other")
    assert [i["type"] for i in other] == ["Session.Created", "Session.QrIssued"]

    wanted = {"Message.Queued", "Session.Opened"}
    expected = [i for i in items if i["type"] in wanted]
    assert await everything(client, a, type=["Message.Queued", "Session.Opened"]) == expected
    assert await everything(client, a, type="Message.Queued,Session.Opened") == expected
    assert await everything(client, a, type="Message.*") == [
        i for i in items if i["type"].startswith("Message.")
    ]
    assert await everything(client, a, type="Message.Received", session="main") == [
        i for i in items if i["type"] == "Message.Received"
    ]

    def at(item: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(item["time"])

    def known(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop what arrived after ``items`` was read (the QR of "other" keeps rotating)."""
        return [i for i in result if i["position"] <= items[-1]["position"]]

    middle = items[len(items) // 2]
    pivot = middle["time"]
    assert known(await everything(client, a, **{"from": pivot})) == [i for i in items if at(i) >= at(middle)]
    assert await everything(client, a, to=pivot) == [i for i in items if at(i) < at(middle)]
    # An offset written with '+' that the query string turned into a space still parses.
    plus = pivot.replace("Z", "+00:00")
    spaced = await client.get(f"/api/v1/events?limit=1000&from={plus}", headers=a)
    assert known(spaced.json()["results"]) == known(await everything(client, a, **{"from": pivot}))
    window = await everything(client, a, **{"from": items[2]["time"], "to": items[-1]["time"]})
    assert window == [i for i in items if at(items[2]) <= at(i) < at(items[-1])]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("type=Claim.Claimed", "type"),
        ("type=Nope.*", "type"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-01-02&to=2026-01-01", "to"),
        ("session=bad%20name", "session"),
    ],
)
async def test_invalid_parameters_are_named(client: AsyncTestClient[Any], query: str, field: str) -> None:
    response = await client.get(f"/api/v1/events?{query}", headers=admin_headers())
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 2002 and body["results"][0]["field"] == field
    assert body["results"][0]["source"] == "query"


async def test_pages_with_after_cover_everything_exactly_once(client: AsyncTestClient[Any]) -> None:
    a, _ = await traffic(client)
    everything_a = await everything(client, a)
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        items, next_after = await page(client, a, after=after, limit=3)
        assert len(items) <= 3
        if not items:
            assert next_after == after
            break
        assert next_after == items[-1]["position"]
        seen.extend(items)
        after = next_after
    assert seen == everything_a
    assert len({i["position"] for i in seen}) == len(seen)
    refused(await client.get("/api/v1/events", headers={}), 401, 2200, message="X-WAREST-API-KEY")


# -- Server-Sent Events over a real HTTP server (the test client buffers whole responses) ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[uvicorn.Server]:
    """The app served by uvicorn in this event loop."""
    config = uvicorn.Config(
        create_litestar(settings),
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, timeout=60)
    yield server
    server.should_exit = True
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def live(server: uvicorn.Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}", timeout=30) as http:
        yield http


async def no_request_running(server: uvicorn.Server) -> None:
    """Every request task of the server has ended (an open stream keeps its task)."""

    async def idle() -> bool:
        return not server.server_state.tasks

    await eventually(idle, timeout=5)


class SseReader:
    """Parses one open event stream: events (field -> value) and comments, in order."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()
        self.events: list[dict[str, str]] = []
        self.comments: list[str] = []

    async def read(self, count: int, timeout: float = 20) -> list[dict[str, str]]:
        """Reads until ``count`` more events have arrived; returns them."""
        target = len(self.events) + count
        current: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while len(self.events) < target:
                line = await anext(self._lines)
                if line == "":
                    if current:
                        self.events.append(current)
                        current = {}
                    continue
                name, _, value = line.partition(":")
                if name == "":
                    self.comments.append(value.strip())
                else:
                    current[name] = value.removeprefix(" ")
        return self.events[target - count :]

    async def ended(self, timeout: float = 10) -> None:
        """Reads until the server ends the stream."""
        async with asyncio.timeout(timeout):
            async for _ in self._lines:
                pass

    async def heartbeat(self, timeout: float = 10) -> str:
        """Reads until a comment arrives (no event may come first)."""
        async with asyncio.timeout(timeout):
            while True:
                line = await anext(self._lines)
                assert not line.startswith(("id:", "event:", "data:")), line
                if line.startswith(":"):
                    return line[1:].strip()


async def test_sse_resumes_from_last_event_id_without_loss_or_repeat(
    live: httpx.AsyncClient, server: uvicorn.Server
) -> None:
    a, _ = await traffic(live)
    before = await everything(live, a)
    cut = len(before) // 2
    async with live.stream("GET", "/api/v1/events/stream", headers=a) as response:
        first = await SseReader(response).read(cut)
        assert len(server.server_state.tasks) == 1  # the stream
    # Disconnected mid-stream: the server ends the stream. More happens meanwhile.
    await no_request_running(server)
    assert (await send_text(live, a, "main", "6288100000009", "while away")).status_code == 200

    async def grew() -> bool:  # queued, sent, receipts; then quiet
        count = len(await everything(live, a))
        await asyncio.sleep(0.3)
        return count >= len(before) + 4 and count == len(await everything(live, a))

    await eventually(grew)
    middle = await everything(live, a)
    # Last-Event-ID wins over the URL's ``after`` (a browser reconnects with both).
    headers = {**a, "Last-Event-ID": first[-1]["id"]}
    async with live.stream("GET", "/api/v1/events/stream?after=0", headers=headers) as response:
        reader = SseReader(response)
        rest = await reader.read(len(middle) - cut)
        # Live: a new command's events arrive on the open stream.
        assert (await send_text(live, a, "main", "6288100000009", "live one")).status_code == 200
        fresh = await reader.read(1)
    await no_request_running(server)
    streamed = first + rest
    assert [int(e["id"]) for e in streamed] == [i["position"] for i in middle]  # none lost, none repeated
    for event, item in zip(streamed, middle, strict=True):
        assert event["event"] == item["type"] and json.loads(event["data"]) == item
    live_item = json.loads(fresh[0]["data"])
    assert live_item["type"] == "Message.Queued" and live_item["data"]["text"] == "live one"
    assert int(fresh[0]["id"]) == live_item["position"] > middle[-1]["position"]


async def test_sse_heartbeats_filters_revocation_and_bad_resume_id(
    live: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EventsController, "heartbeat_s", 0.3)
    a = await tenant(live, "beat-a")
    await live.post("/api/v1/session/create", json={"sessionId": "s"}, headers=a)
    bad = await live.get("/api/v1/events/stream", headers={**a, "Last-Event-ID": "abc"})
    refused(bad, 400, 2002, field="Last-Event-ID")
    assert bad.json()["results"][0]["source"] == "header"
    async with live.stream("GET", "/api/v1/events/stream?type=Session.Created", headers=a) as response:
        reader = SseReader(response)
        assert [e["event"] for e in await reader.read(1)] == ["Session.Created"]
        assert await reader.heartbeat() == "heartbeat"  # the QR event is filtered out
        # The key is checked again at the heartbeat's pace: disabling the user ends the stream.
        disabled = await live.post("/api/v1/users/beat-a/disable", headers=admin_headers())
        assert disabled.status_code == 200, disabled.text
        await reader.ended()
    refused(await live.get("/api/v1/events/stream", headers=a), 401, 2200)


async def test_time_filters_read_an_event_whose_text_holds_a_nul(client: AsyncTestClient[Any]) -> None:
    """WhatsApp's text is recorded as received, NUL included; the history's time filters
    must still read the event (PostgreSQL's jsonb refuses the \\u0000 escape)."""
    a = await tenant(client, "hist-nul")
    await open_by_scan(client, a, "main", "6288200000001")
    assert (
        await client.post("/api/v1/sandbox/accounts", json={"phone": "6288200000009"}, headers=a)
    ).status_code == 201
    inbound = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": "6288200000009", "to": "6288200000001", "text": "poison\x00byte"},
        headers=a,
    )
    assert inbound.status_code == 200, inbound.text

    async def received() -> list[dict[str, Any]]:
        return [i for i in await everything(client, a) if i["type"] == "Message.Received"]

    async def arrived() -> bool:
        return bool(await received())

    await eventually(arrived)
    (item,) = await received()
    assert item["data"]["text"] == "poison\x00byte"  # recorded as received
    window = await everything(client, a, **{"from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"})
    assert item["position"] in [i["position"] for i in window]
