"""Sessions are scoped to their owner's registry; other tenants see a missing session."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.conftest import admin_headers, create_user


async def two_tenants(client: AsyncTestClient[Any]) -> tuple[dict[str, str], dict[str, str]]:
    a = await create_user(client, "tenant-a")
    b = await create_user(client, "tenant-b")
    return {"X-WAREST-API-KEY": a["apiKey"]}, {"X-WAREST-API-KEY": b["apiKey"]}


async def test_other_tenants_session_answers_exactly_like_a_missing_one(client: AsyncTestClient[Any]) -> None:
    a, b = await two_tenants(client)
    created = await client.post("/api/v1/session/create", json={"sessionId": "shop"}, headers=a)
    assert created.status_code == 202 and created.json()["results"][0]["sessionId"] == "shop"
    assert created.json()["code"] == 1107 and created.json()["results"][0]["qrString"].startswith("2@")

    for method, path in (
        ("GET", "/api/v1/session/info?sessionId={}"),
        ("DELETE", "/api/v1/session/delete?sessionId={}"),
    ):
        foreign = await client.request(method, path.format("shop"), headers=b)
        missing = await client.request(method, path.format("no-such-session"), headers=b)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["code"] == missing.json()["code"] == 1101
        assert foreign.json()["message"] == missing.json()["message"]
    foreign = await client.post(
        "/api/v1/session/shop/config", json={"webhookUrl": "https://evil.example/h"}, headers=b
    )
    missing = await client.post(
        "/api/v1/session/zzz/config", json={"webhookUrl": "https://evil.example/h"}, headers=b
    )
    refused(foreign, 404, 1101)
    assert foreign.json() == missing.json()

    # A's session is untouched by B's attempts.
    info = await client.get("/api/v1/session/info?sessionId=shop", headers=a)
    assert info.status_code == 200
    assert info.json()["results"][0]["webhookUrl"] == ""


async def test_lists_show_only_the_callers_sessions(client: AsyncTestClient[Any]) -> None:
    a, b = await two_tenants(client)
    await client.post("/api/v1/session/create", json={"sessionId": "a1"}, headers=a)
    await client.post("/api/v1/session/create", json={"sessionId": "a2"}, headers=a)
    await client.post("/api/v1/session/create", json={"sessionId": "b1"}, headers=b)
    listed_a = (await client.get("/api/v1/session/list", headers=a)).json()["results"][0]["items"]
    listed_b = (await client.get("/api/v1/session/list", headers=b)).json()["results"][0]["items"]
    assert sorted(s["sessionId"] for s in listed_a) == ["a1", "a2"]
    assert [s["sessionId"] for s in listed_b] == ["b1"]
    # Even the admin sees only its own registry on the tenant routes.
    listed_admin = (await client.get("/api/v1/session/list", headers=admin_headers())).json()
    assert listed_admin["results"][0]["items"] == []


async def test_same_session_id_in_two_tenants_no_squatting(client: AsyncTestClient[Any]) -> None:
    a, b = await two_tenants(client)
    first = await client.post(
        "/api/v1/session/create", json={"sessionId": "main", "label": "A main"}, headers=a
    )
    second = await client.post(
        "/api/v1/session/create", json={"sessionId": "main", "label": "B main"}, headers=b
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["results"][0]["created"] is second.json()["results"][0]["created"] is True
    ra, rb = first.json()["results"][0], second.json()["results"][0]
    assert ra["registryUser"] != rb["registryUser"]
    assert (await client.get("/api/v1/session/info?sessionId=main", headers=a)).json()["results"][0][
        "label"
    ] == "A main"
    assert (await client.get("/api/v1/session/info?sessionId=main", headers=b)).json()["results"][0][
        "label"
    ] == "B main"
    # B deleting its "main" leaves A's "main" alone.
    assert (await client.delete("/api/v1/session/delete?sessionId=main", headers=b)).status_code == 200
    assert (await client.get("/api/v1/session/info?sessionId=main", headers=a)).status_code == 200
    refused(await client.get("/api/v1/session/info?sessionId=main", headers=b), 404, 1101)


async def test_admin_reaches_other_tenants_only_through_admin_routes(client: AsyncTestClient[Any]) -> None:
    a, _ = await two_tenants(client)
    await client.post("/api/v1/session/create", json={"sessionId": "shop"}, headers=a)
    registry = (await client.get("/api/v1/users/me", headers=a)).json()["results"][0]["registry"]
    # Tenant route: the admin is just another tenant.
    refused(await client.get("/api/v1/session/info?sessionId=shop", headers=admin_headers()), 404, 1101)
    # Explicit admin route: allowed for admins...
    response = await client.get(f"/api/v1/admin/registries/{registry}/sessions", headers=admin_headers())
    assert response.status_code == 200
    assert [s["sessionId"] for s in response.json()["results"][0]["items"]] == ["shop"]
    # ...and refused to tenants.
    refused(await client.get(f"/api/v1/admin/registries/{registry}/sessions", headers=a), 403, 2201)


async def test_create_is_idempotent_and_delete_then_recreate_works(client: AsyncTestClient[Any]) -> None:
    a, _ = await two_tenants(client)
    first = await client.get("/api/v1/session/create?sessionId=s1", headers=a)
    again = await client.get("/api/v1/session/create?sessionId=s1", headers=a)
    assert first.json()["results"][0]["created"] is True and again.json()["results"][0]["created"] is False
    assert first.json()["results"][0]["qrString"] == again.json()["results"][0]["qrString"]  # the same login
    assert (await client.delete("/api/v1/session/delete?sessionId=s1", headers=a)).status_code == 200
    recreated = await client.post(
        "/api/v1/session/create", json={"sessionId": "s1", "label": "new"}, headers=a
    )
    assert recreated.json()["results"][0]["created"] is True
    assert recreated.json()["results"][0]["label"] == "new"


async def test_session_id_is_validated(client: AsyncTestClient[Any]) -> None:
    a, _ = await two_tenants(client)
    missing = await client.get("/api/v1/session/create", headers=a)
    assert missing.status_code == 400 and missing.json()["code"] == 1100
    bad = await client.get("/api/v1/session/create?sessionId=bad%20id!", headers=a)
    refused(bad, 400, 1100, field="sessionId", message="sessionId is invalid")
    too_long = await client.get("/api/v1/session/create?sessionId=" + "x" * 65, headers=a)
    refused(too_long, 400, 1100, field="sessionId", message="sessionId is invalid")


async def test_labels_are_validated_and_travel_safely_in_headers(client: AsyncTestClient[Any]) -> None:
    a, _ = await two_tenants(client)
    injected = await client.post(
        "/api/v1/session/create", json={"sessionId": "x", "label": "ok\r\nSet-Cookie: evil=1"}, headers=a
    )
    refused(injected, 400, 2002, field="label")
    refused(await client.get("/api/v1/session/info?sessionId=x", headers=a), 404, 1101)  # nothing stored
    unicode = await client.post(
        "/api/v1/session/create", json={"sessionId": "cafe", "label": "Café ☕"}, headers=a
    )
    assert unicode.status_code == 202
    assert unicode.json()["results"][0]["label"] == "Café ☕"
    assert unicode.headers["x-warest-label"] == "Caf%C3%A9 %E2%98%95"
