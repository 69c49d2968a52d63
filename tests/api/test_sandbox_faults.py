"""Each sandbox fault leads to the right session status and events."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.api.test_sandbox_messaging import (
    eventually,
    message_events,
    open_by_scan,
    send_text,
    session_status,
    tenant,
)
from tests.conftest import db_rows
from warest.config import Settings


async def fault(client: AsyncTestClient[Any], headers: dict[str, str], kind: str, **body: Any) -> Any:
    response = await client.post("/api/v1/sandbox/faults", json={"kind": kind, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


async def lifecycle_events(settings: Settings, session: str) -> list[str]:
    rows = await db_rows(
        settings,
        "SELECT topic FROM warest_events"
        " WHERE originator_id = (SELECT id FROM rm_sessions WHERE session_id = $1)"
        " ORDER BY notification_id",
        session,
    )
    return [r["topic"].rpartition(".")[2] for r in rows]


async def wait_status(client: AsyncTestClient[Any], headers: dict[str, str], name: str, status: str) -> None:
    async def reached() -> bool:
        return await session_status(client, headers, name) == status

    await eventually(reached)


async def test_logout_from_the_phone(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-logout")
    await open_by_scan(client, a, "s", "6287000000001")
    assert await fault(client, a, "logout", sessionId="s") == {"kind": "logout", "sessions": ["s"]}
    await wait_status(client, a, "s", "logged_out")
    info = (await client.get("/api/v1/session/info?sessionId=s", headers=a)).json()["results"][0]
    assert info["me"] is None and info["statusReason"] == "logged out from the phone"
    refused(await send_text(client, a, "s", "6287000000002", "x"), 409, 1106)
    assert (await lifecycle_events(settings, "s"))[-1] == "LoggedOut"
    # Logging in again shows a new QR: the device was forgotten.
    again = await client.post("/api/v1/session/create", json={"sessionId": "s"}, headers=a)
    assert again.status_code == 202 and again.json()["results"][0]["qrString"]


async def test_disconnect_then_reconnect(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-disconnect")
    await open_by_scan(client, a, "s", "6287000000011")
    await fault(client, a, "disconnect", sessionId="s", reconnectAfterMs=1500)
    await wait_status(client, a, "s", "reconnecting")
    info = (await client.get("/api/v1/session/info", params={"sessionId": "s"}, headers=a)).json()
    outage = info["results"][0]["outage"]  # live status, not an event
    assert info["code"] == 1000 and outage["reason"] == "connection lost"
    assert outage["attempts"] == 1 and outage["nextRetryAt"] and outage["suspended"] is False

    async def reconnected() -> bool:  # the outage is two transitions: lost, then open again
        return (await lifecycle_events(settings, "s"))[-3:] == ["Opened", "ConnectionLost", "Opened"]

    await eventually(reconnected)
    await wait_status(client, a, "s", "open")
    info = (await client.get("/api/v1/session/info", params={"sessionId": "s"}, headers=a)).json()
    assert info["results"][0]["outage"] is None
    assert (await send_text(client, a, "s", "6287000000012", "after reconnect")).status_code == 200


async def test_stream_replaced(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-replaced")
    await open_by_scan(client, a, "s", "6287000000021")
    await fault(client, a, "stream_replaced", sessionId="s")
    await wait_status(client, a, "s", "replaced")
    assert (await lifecycle_events(settings, "s"))[-1] == "Replaced"
    refused(await send_text(client, a, "s", "6287000000022", "x"), 409, 1106)


async def test_temporary_ban_ends_by_itself(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-ban")
    await open_by_scan(client, a, "s", "6287000000031")
    await fault(client, a, "temp_ban", sessionId="s", seconds=1)
    await wait_status(client, a, "s", "banned")
    refused(await send_text(client, a, "s", "6287000000032", "x"), 409, 1106)

    async def back() -> bool:
        recorded = await lifecycle_events(settings, "s")
        return recorded[-4:] == ["Opened", "Banned", "ConnectionStarted", "Opened"]

    await eventually(back)
    await wait_status(client, a, "s", "open")


async def test_error_463_for_a_cold_contact(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-463")
    await open_by_scan(client, a, "s", "6287000000041")
    await fault(client, a, "error_463", sessionId="s", count=1)
    failed = await send_text(client, a, "s", "6287000000042", "cold")
    assert failed.status_code == 502 and failed.json()["code"] == 3002
    outcome = failed.json()["results"][0]
    assert outcome["status"] == "failed" and "463" in outcome["error"]
    kinds = [k for k, _ in await message_events(settings, outcome["messageId"])]
    assert kinds == ["Queued", "SendFailed"]
    retry = await send_text(client, a, "s", "6287000000042", "cold again")  # the fault was used up
    assert retry.status_code == 200


async def test_duplicate_redelivery_is_dropped(client: AsyncTestClient[Any], settings: Settings) -> None:
    a = await tenant(client, "fault-dup")
    await open_by_scan(client, a, "s", "6287000000051")
    await client.post("/api/v1/sandbox/accounts", json={"phone": "6287000000052"}, headers=a)
    await fault(client, a, "duplicate", sessionId="s")
    sent = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": "6287000000052", "to": "6287000000051", "text": "once"},
        headers=a,
    )
    wa_id = sent.json()["results"][0]["messageId"]

    async def received() -> bool:
        return bool(await message_events(settings, wa_id))

    await eventually(received)
    # A later message proves the duplicate was processed (and dropped) before it.
    later = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": "6287000000052", "to": "6287000000051", "text": "later"},
        headers=a,
    )

    async def later_received() -> bool:
        return bool(await message_events(settings, later.json()["results"][0]["messageId"]))

    await eventually(later_received)
    assert [k for k, _ in await message_events(settings, wa_id)] == ["Received"]


async def test_out_of_order_delivery_is_recorded_as_it_arrives(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a = await tenant(client, "fault-order")
    await open_by_scan(client, a, "s", "6287000000061")
    await client.post("/api/v1/sandbox/accounts", json={"phone": "6287000000062"}, headers=a)
    await fault(client, a, "out_of_order", sessionId="s", count=2)
    ids = []
    for text in ("first", "second"):
        response = await client.post(
            "/api/v1/sandbox/messages",
            json={"from": "6287000000062", "to": "6287000000061", "text": text},
            headers=a,
        )
        ids.append(response.json()["results"][0]["messageId"])

    async def both() -> bool:
        return all([await message_events(settings, i) for i in ids])

    await eventually(both)
    order = await db_rows(
        settings,
        "SELECT i.wa_id FROM warest_events e JOIN rm_message_index i ON i.message_id = e.originator_id"
        " WHERE i.wa_id = ANY($1::text[]) ORDER BY e.notification_id",
        ids,
    )
    assert [r["wa_id"] for r in order] == [ids[1], ids[0]]  # arrived reversed, recorded as arrived


async def test_faults_are_scoped_to_the_callers_sessions(client: AsyncTestClient[Any]) -> None:
    a, b = await tenant(client, "fault-owner"), await tenant(client, "fault-other")
    await open_by_scan(client, a, "s", "6287000000071")
    response = await client.post(
        "/api/v1/sandbox/faults", json={"kind": "logout", "sessionId": "s"}, headers=b
    )
    refused(response, 404, 2600, message="session 's' is not running")
    by_phone = await client.post(
        "/api/v1/sandbox/faults", json={"kind": "logout", "phone": "6287000000071"}, headers=b
    )
    refused(by_phone, 404, 2600, message="6287000000071")
    scan = await client.post(
        "/api/v1/sandbox/scan", json={"sessionId": "s", "phone": "6287000000079"}, headers=b
    )
    refused(scan, 404, 2600, message="session 's' is not running")
    assert await session_status(client, a, "s") == "open"
    unknown = await client.post(
        "/api/v1/sandbox/faults", json={"kind": "meteor", "sessionId": "s"}, headers=a
    )
    refused(unknown, 400, 2002, field="kind")


async def test_queued_messages_fail_when_the_session_is_logged_out(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a = await tenant(client, "fault-pending")
    await open_by_scan(client, a, "s", "6287000000081")
    await fault(client, a, "slow", sessionId="s", delayMs=60000)
    # The HTTP call waits WAREST_SEND_WAIT_MS; send in the background and log out meanwhile.
    pending = asyncio.create_task(send_text(client, a, "s", "6287000000082", "never"))
    await asyncio.sleep(0.3)
    await fault(client, a, "logout", sessionId="s")
    await wait_status(client, a, "s", "logged_out")

    async def failed() -> bool:
        rows = await db_rows(
            settings, "SELECT state FROM warest_events WHERE topic LIKE '%Message.SendFailed'"
        )
        return any(b"logged out" in bytes(r["state"]) for r in rows)

    await eventually(failed)
    pending.cancel()
