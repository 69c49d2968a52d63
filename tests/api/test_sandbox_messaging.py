"""Sessions on the sandbox network: login by QR and pair code, text both ways, receipts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.conftest import create_user, db_rows, make_settings
from warest.asgi import create_litestar
from warest.config import Settings


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def tenant(client: AsyncTestClient[Any], name: str) -> dict[str, str]:
    user = await create_user(client, name)
    return {"X-WAREST-API-KEY": user["apiKey"]}


async def session_status(client: AsyncTestClient[Any], headers: dict[str, str], name: str) -> str:
    response = await client.get(f"/api/v1/session/info?sessionId={name}", headers=headers)
    return str(response.json()["results"][0]["status"])


async def open_by_scan(client: AsyncTestClient[Any], headers: dict[str, str], name: str, phone: str) -> None:
    created = await client.post(
        "/api/v1/session/create", json={"sessionId": name, "engine": "sandbox"}, headers=headers
    )
    assert created.status_code == 202, created.text
    result = created.json()["results"][0]
    assert result["qr"].startswith("data:image/png;base64,") and result["qrDuration"] == 20
    scanned = await client.post(
        "/api/v1/sandbox/scan", json={"sessionId": name, "phone": phone}, headers=headers
    )
    assert scanned.status_code == 200, scanned.text

    async def is_open() -> bool:
        return await session_status(client, headers, name) == "open"

    await eventually(is_open)


async def send_text(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, to: Any, text: str, **extra: Any
) -> Any:
    return await client.post(
        "/api/v1/messages/send/text",
        json={"sessionId": session, "to": to, "message": text},
        headers={**headers, **extra},
    )


async def test_scan_login_shows_me_and_the_device(client: AsyncTestClient[Any]) -> None:
    a = await tenant(client, "shop-a")
    await open_by_scan(client, a, "main", "6281111111111")
    info = (await client.get("/api/v1/session/info?sessionId=main", headers=a)).json()["results"][0]
    assert info["me"]["id"] == "6281111111111@s.whatsapp.net"
    assert info["me"]["lid"].endswith("@lid") and info["lastConn"]
    again = await client.post("/api/v1/session/create", json={"sessionId": "main"}, headers=a)
    assert again.status_code == 200 and again.json()["code"] == 1104
    device = (await client.get("/api/v1/session/devices?sessionId=main", headers=a)).json()["results"][0]
    assert device == {
        "name": "6281111111111",
        "phone": "6281111111111",
        "device": "sandbox",
        "status": "open",
    }


async def test_pair_code_login(client: AsyncTestClient[Any]) -> None:
    b = await tenant(client, "shop-b")
    missing = await client.get("/api/v1/session/create/pair-code?sessionId=p", headers=b)
    refused(missing, 400, 2001, field="phone")
    response = await client.get(
        "/api/v1/session/create/pair-code?sessionId=p&phone=6282222222222&engine=sandbox", headers=b
    )
    assert response.status_code == 200, response.text
    code = response.json()["results"][0]["pairCode"]
    assert len(code) == 9 and code[4] == "-" and code.replace("-", "").isalnum() and code.isupper()
    wrong = await client.post(
        "/api/v1/sandbox/pair", json={"phone": "6282222222222", "code": "AAAA-AAAA"}, headers=b
    )
    assert wrong.status_code == 404
    paired = await client.post(
        "/api/v1/sandbox/pair", json={"phone": "6282222222222", "code": code}, headers=b
    )
    assert paired.status_code == 200 and paired.json()["results"][0]["sessionId"] == "p"

    async def is_open() -> bool:
        return await session_status(client, b, "p") == "open"

    await eventually(is_open)


async def message_events(settings: Settings, wa_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(event class, state) of every Message event about ``wa_id``, in log order: read from
    the log alone (a read model may not have caught up when an answer comes)."""
    rows = await db_rows(
        settings,
        "SELECT e.topic, e.state FROM warest_events e WHERE e.originator_id IN"
        " (SELECT originator_id FROM warest_events WHERE topic LIKE '%Message.%'"
        " AND convert_from(state, 'UTF8')::jsonb ->> 'wa_id' = $1)"
        " ORDER BY e.notification_id",
        wa_id,
    )
    return [(r["topic"].rpartition(".")[2], json.loads(r["state"])) for r in rows]


async def received_events(settings: Settings, wa_id: str) -> int:
    """Message.Received events in the log whose state names ``wa_id`` (no read model involved)."""
    rows = await db_rows(
        settings,
        "SELECT count(*) FROM warest_events WHERE topic LIKE '%Message.Received'"
        " AND convert_from(state, 'UTF8') LIKE '%' || $1 || '%'",
        wa_id,
    )
    return int(rows[0][0])


async def test_text_both_ways_with_receipts_between_two_tenants(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a, b = await tenant(client, "tenant-a"), await tenant(client, "tenant-b")
    await open_by_scan(client, a, "sa", "6281000000001")
    await open_by_scan(client, b, "sb", "6281000000002")
    sent = await send_text(client, a, "sa", "6281000000002", "hello from A")
    assert sent.status_code == 200, sent.text
    assert sent.json()["message"] == "Text message sent"
    outcome = sent.json()["results"][0]
    assert outcome["status"] in ("sent", "server", "delivered")  # receipts may already have arrived
    assert outcome["to"] == "6281000000002@s.whatsapp.net"
    reply = await send_text(client, b, "sb", ["081000000001"], "hi A, B here")  # local format, default 62
    back = reply.json()["results"][0]
    assert back["to"] == "6281000000001@s.whatsapp.net" and back["status"] != "failed"

    async def both_delivered() -> bool:
        kinds_a = [k for k, _ in await message_events(settings, outcome["messageId"])]
        kinds_b = [k for k, _ in await message_events(settings, back["messageId"])]
        return "StatusChanged" in kinds_a and "StatusChanged" in kinds_b and "Received" in kinds_a

    await eventually(both_delivered)
    events = await message_events(settings, outcome["messageId"])
    kinds = [k for k, _ in events]
    # A's outbound message: queued, sent, then the receipts in order...
    outbound = [k for k in kinds if k != "Received"]
    assert outbound == ["Queued", "Sent", "StatusChanged", "StatusChanged"]
    assert [s["status"] for k, s in events if k == "StatusChanged"] == ["server", "delivered"]
    # ...and B's inbound copy, in B's registry, from A's number.
    received = next(s for k, s in events if k == "Received")
    assert received["text"] == "hello from A" and received["chat"] == "6281000000001@s.whatsapp.net"
    queued = next(s for k, s in events if k == "Queued")
    assert received["registry"] != queued["registry"]


async def test_send_rules_not_open_unknown_foreign_and_validation_first(client: AsyncTestClient[Any]) -> None:
    a, b = await tenant(client, "rules-a"), await tenant(client, "rules-b")
    await client.post("/api/v1/session/create", json={"sessionId": "waiting"}, headers=a)
    not_open = await send_text(client, a, "waiting", "6281234567890", "hi")
    assert not_open.status_code == 409 and not_open.json()["code"] == 1106
    unknown = await send_text(client, a, "nope", "6281234567890", "hi")
    assert unknown.status_code == 404 and unknown.json()["code"] == 1101
    foreign = await send_text(client, b, "waiting", "6281234567890", "hi")
    assert foreign.json() == unknown.json()
    # Input is validated before the session is looked up (the original did it the other way round).
    missing_text = await client.post(
        "/api/v1/messages/send/text", json={"sessionId": "nope", "to": "62812345"}, headers=a
    )
    refused(missing_text, 400, 2001, field="message")
    bad_to = await send_text(client, a, "nope", "12@unknown.server", "hi")
    refused(bad_to, 400, 2002, field="to")
    no_session = await client.post(
        "/api/v1/messages/send/text", json={"to": "6281234567", "message": "x"}, headers=a
    )
    assert no_session.status_code == 400 and no_session.json()["code"] == 1100


async def test_a_deleted_session_is_not_found_at_once_by_sends(client: AsyncTestClient[Any]) -> None:
    """Sends look the session up through a short-lived cache: a delete must still be seen
    by the very next send (not found, nothing queued), not answered from the cache."""
    a = await tenant(client, "gone-a")
    await open_by_scan(client, a, "main", "6281111111190")
    sent = await send_text(client, a, "main", "6281234567890", "before")
    assert sent.status_code == 200 and sent.json()["results"][0]["status"] != "failed"
    deleted = await client.delete("/api/v1/session/delete?sessionId=main", headers=a)
    assert deleted.status_code == 200, deleted.text
    after = await send_text(client, a, "main", "6281234567890", "after")
    assert after.status_code == 404 and after.json()["code"] == 1101
    events = await client.get("/api/v1/events?type=Message.Queued", headers=a)
    assert [e["data"]["text"] for e in events.json()["results"]] == ["before"]


async def test_receipts_keep_up_with_a_burst_of_sends(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    """200 concurrent sends: every message gets its server and delivered receipts recorded,
    each once. (In process 200 sends are too few for one save per receipt to fall behind:
    tests/unit/test_runtime_receipts.py proves the batching; bench/send_text.py the load.)"""
    a = await tenant(client, "burst-a")
    await open_by_scan(client, a, "main", "6281111111180")
    account = await client.post("/api/v1/sandbox/accounts", json={"phone": "6281234500000"}, headers=a)
    assert account.status_code == 201
    answers = await asyncio.gather(
        *(send_text(client, a, "main", "6281234500000", f"m{i}") for i in range(200))
    )
    assert all(r.status_code == 200 for r in answers)

    async def statuses() -> list[int]:
        (row,) = await db_rows(
            settings,
            "SELECT count(*) FILTER (WHERE topic LIKE '%Message.Sent'),"
            " count(*) FILTER (WHERE topic LIKE '%Message.StatusChanged') FROM warest_events",
        )
        return [int(row[0]), int(row[1])]

    async def all_delivered() -> bool:
        return await statuses() == [200, 400]

    await eventually(all_delivered)
    assert await statuses() == [200, 400]  # and no more: each receipt recorded once


async def test_recipient_forms_lid_kept_cus_mapped(client: AsyncTestClient[Any]) -> None:
    a = await tenant(client, "forms-a")
    await open_by_scan(client, a, "s", "6283000000001")
    response = await send_text(
        client,
        a,
        "s",
        "123456789012345@lid, 6283000000002@c.us; 120363000000000001@g.us\n+62 830-0000-0003",
        "x",
    )
    assert response.status_code == 200, response.text
    assert [r["to"] for r in response.json()["results"]] == [
        "123456789012345@lid",
        "6283000000002@s.whatsapp.net",
        "120363000000000001@g.us",
        "6283000000003@s.whatsapp.net",
    ]
    assert response.json()["message"] == "Text message sent (4 recipients)"


async def test_idempotency_key_returns_the_first_answer_and_sends_once(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a = await tenant(client, "idem-a")
    await open_by_scan(client, a, "s", "6284000000001")
    await client.post("/api/v1/sandbox/accounts", json={"phone": "6284000000009"}, headers=a)
    key = {"Idempotency-Key": "order-42"}
    first = await send_text(client, a, "s", "6284000000009", "your order shipped", **key)
    second = await send_text(client, a, "s", "6284000000009", "your order shipped", **key)
    assert first.status_code == second.status_code == 200
    assert first.json()["results"][0]["messageId"] == second.json()["results"][0]["messageId"]
    inbox = (await client.get("/api/v1/sandbox/accounts/6284000000009/inbox", headers=a)).json()["results"]
    assert [m["text"] for m in inbox] == ["your order shipped"]  # sent once
    kinds = [k for k, _ in await message_events(settings, first.json()["results"][0]["messageId"])]
    assert kinds.count("Queued") == 1 and kinds.count("Sent") == 1
    reused = await send_text(client, a, "s", "6284000000009", "something else", **key)
    refused(reused, 409, 2004, message="Idempotency-Key")
    other_recipient = await send_text(client, a, "s", "6284000000008", "your order shipped", **key)
    refused(other_recipient, 409, 2004, message="Idempotency-Key")  # a different request: nothing sent
    other_key = await send_text(
        client, a, "s", "6284000000009", "your order shipped", **{"Idempotency-Key": "order-43"}
    )
    assert other_key.json()["results"][0]["messageId"] != first.json()["results"][0]["messageId"]


async def test_external_account_conversation_and_read_receipts(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a = await tenant(client, "ext-a")
    await open_by_scan(client, a, "s", "6285000000001")
    account = await client.post(
        "/api/v1/sandbox/accounts",
        json={"phone": "6285000000002", "pushName": "Budi", "autoRead": True},
        headers=a,
    )
    assert account.status_code == 201 and account.json()["results"][0]["lid"].endswith("@lid")
    inbound = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": "6285000000002", "to": "6285000000001", "text": "halo"},
        headers=a,
    )
    assert inbound.status_code == 200
    inbound_id = inbound.json()["results"][0]["messageId"]
    # Recorded once, and already there when the answer came (in process the session is quick
    # enough either way: tests/unit/test_sandbox_settle.py proves the answer waits for it).
    assert await received_events(settings, inbound_id) == 1
    state = next(s for k, s in await message_events(settings, inbound_id) if k == "Received")
    assert (
        state["text"] == "halo"
        and state["push_name"] == "Budi"
        and state["sender"] == "6285000000002@s.whatsapp.net"
    )

    out = await send_text(client, a, "s", "6285000000002", "halo juga")
    out_id = out.json()["results"][0]["messageId"]

    async def read() -> bool:
        return [s["status"] for k, s in await message_events(settings, out_id) if k == "StatusChanged"] == [
            "server",
            "delivered",
            "read",
        ]

    await eventually(read)
    inbox = (await client.get("/api/v1/sandbox/accounts/6285000000002/inbox", headers=a)).json()["results"]
    assert inbox[-1]["text"] == "halo juga" and inbox[-1]["sender"] == "6285000000001@s.whatsapp.net"
    # Another tenant can neither read that inbox nor make the account speak.
    b = await tenant(client, "ext-b")
    foreign_inbox = await client.get("/api/v1/sandbox/accounts/6285000000002/inbox", headers=b)
    refused(foreign_inbox, 404, 2600, message="6285000000002")
    spoof = await client.post(
        "/api/v1/sandbox/messages",
        json={"from": "6285000000002", "to": "6285000000001", "text": "x"},
        headers=b,
    )
    refused(spoof, 404, 2600, message="6285000000002")


async def test_queue_size_limit_answers_429(database_url: str, schema: str, tmp_path: Any) -> None:
    settings = make_settings(database_url, schema, tmp_path, WAREST_QUEUE_MAX_SIZE="2")
    async with AsyncTestClient(app=create_litestar(settings)) as small:
        a = await tenant(small, "queue-a")
        await open_by_scan(small, a, "s", "6286000000001")
        too_many = await send_text(small, a, "s", ["6286000000002", "6286000000003", "6286000000004"], "x")
        assert too_many.status_code == 429 and too_many.json()["code"] == 2400
        assert too_many.headers["retry-after"] == "1"
        fits = await send_text(small, a, "s", ["6286000000002", "6286000000003"], "x")
        assert fits.status_code == 200


async def test_concurrent_sends_never_overfill_the_queue(
    database_url: str, schema: str, tmp_path: Any
) -> None:
    settings = make_settings(
        database_url, schema, tmp_path, WAREST_QUEUE_MAX_SIZE="2", WAREST_SEND_WAIT_MS="200"
    )
    async with AsyncTestClient(app=create_litestar(settings)) as small:
        a = await tenant(small, "overfill-a")
        await open_by_scan(small, a, "s", "6286100000001")
        await small.post(
            "/api/v1/sandbox/faults", json={"kind": "slow", "sessionId": "s", "delayMs": 3000}, headers=a
        )
        responses = await asyncio.gather(
            *(send_text(small, a, "s", f"62861000000{i:02d}", "x") for i in range(2, 6))
        )
        codes = sorted(r.status_code for r in responses)
        # One send is in flight (the worker took it), two wait in the queue of size 2...
        assert codes.count(429) >= 1 and codes.count(202) <= 3
        accepted = [r for r in responses if r.status_code == 202]
        assert all(r.json()["results"][0]["status"] == "queued" for r in accepted)


async def test_a_disabled_engine_is_refused_before_anything_is_stored(
    database_url: str, schema: str, tmp_path: Any
) -> None:
    settings = make_settings(
        database_url, schema, tmp_path, WAREST_ENGINE="neonize", WAREST_SANDBOX_ENABLED="false"
    )
    async with AsyncTestClient(app=create_litestar(settings)) as plain:
        a = await tenant(plain, "engine-a")
        refused = await plain.post(
            "/api/v1/session/create", json={"sessionId": "x", "engine": "sandbox"}, headers=a
        )
        assert refused.status_code == 400 and "not enabled" in refused.json()["message"]
        assert refused.json()["code"] == 2002 and refused.json()["results"][0]["field"] == "engine"
        nothing = await plain.get("/api/v1/session/info?sessionId=x", headers=a)
        assert nothing.status_code == 404 and nothing.json()["code"] == 1101
        # The control API is not mounted: its routes say how to enable it.
        for off in (
            await plain.post("/api/v1/sandbox/accounts", json={"phone": "628"}, headers=a),
            await plain.get("/api/v1/sandbox/accounts/628/inbox", headers=a),
            await plain.post("/api/v1/sandbox", headers=a),
        ):
            assert off.status_code == 404, off.text
            assert off.json()["code"] == 2600
            assert off.json()["message"].startswith("The sandbox is not enabled on this server")
            assert "WAREST_ENGINE=sandbox" in off.json()["message"]
            assert "WAREST_SANDBOX_ENABLED=true" in off.json()["message"]
        anonymous = await plain.get("/api/v1/sandbox/accounts/628")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == 2200  # the key comes first


async def test_a_session_whose_engine_is_gone_after_a_restart_shows_unavailable_then_comes_back(
    database_url: str, schema: str, tmp_path: Any
) -> None:
    """The registry must not show ``open`` for a session nothing runs: a server without the
    session's engine records ``unavailable`` (with why); one with the engine starts it again."""
    with_sandbox = make_settings(database_url, schema, tmp_path)
    async with AsyncTestClient(app=create_litestar(with_sandbox)) as first:
        a = await tenant(first, "gone-engine")
        await open_by_scan(first, a, "main", "6281111111170")

    without = make_settings(
        database_url, schema, tmp_path, WAREST_ENGINE="neonize", WAREST_SANDBOX_ENABLED="false"
    )
    async with AsyncTestClient(app=create_litestar(without)) as second:

        async def unavailable() -> bool:
            return await session_status(second, a, "main") == "unavailable"

        await eventually(unavailable)
        info = (await second.get("/api/v1/session/info?sessionId=main", headers=a)).json()["results"][0]
        assert "sandbox" in str(info)  # the reason names the missing engine
        refused = await send_text(second, a, "main", "6281234567890", "hi")
        assert refused.status_code == 409 and refused.json()["code"] == 1106  # not open
        events = (await second.get("/api/v1/events?type=Session.StartDeferred", headers=a)).json()["results"]
        assert len(events) == 1 and "sandbox" in events[0]["data"]["reason"]

    async with AsyncTestClient(app=create_litestar(without)) as third:  # still without: not recorded twice
        await asyncio.sleep(0.5)
        # (its former name, Session.Unavailable, still selects it)
        events = (await third.get("/api/v1/events?type=Session.Unavailable", headers=a)).json()["results"]
        assert len(events) == 1

    async with AsyncTestClient(app=create_litestar(with_sandbox)) as fourth:

        async def reopened() -> bool:
            return await session_status(fourth, a, "main") == "open"

        await eventually(reopened)  # the linked device reconnects without a QR
