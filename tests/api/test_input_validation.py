"""Validate at the boundary: every bad input answers a clear 400 in the envelope naming the
field, never a 500 (free text WhatsApp and the read models cannot hold, integers beyond what
the database holds, out-of-range paging, NUL in paths and queries, JSON nested too deep,
non-ASCII phone digits)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import tenant
from tests.conftest import admin_headers
from tests.unit.test_jid_digits import ARABIC_INDIC, FULLWIDTH, in_digits

BIG = 2**63  # one past the largest PostgreSQL bigint
NUL = "a\x00b"


async def tenant_with_session(client: AsyncTestClient[Any], name: str) -> dict[str, str]:
    """A tenant with a session ``m`` (created, waiting for its QR scan)."""
    headers = await tenant(client, name)
    created = await client.post(
        "/api/v1/session/create", json={"sessionId": "m", "engine": "sandbox"}, headers=headers
    )
    assert created.status_code == 202, created.text
    return headers


def assert_refused(response: Any, field: str, code: int = 2002, what: str = "") -> dict[str, Any]:
    assert response.status_code == 400, f"{what}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    assert body["status"] is False and body["code"] == code, f"{what}: {body}"
    if code == 2002:
        assert body["results"][0]["field"] == field, f"{what}: {body}"
        assert f"'{field}'" in body["message"], f"{what}: {body}"
    return body


async def test_free_text_with_nul_is_refused_naming_the_field(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "text-a")
    hooks = "/api/v1/session/m/webhooks"
    url = "https://hooks.example.com/in"
    send = "/api/v1/messages/send/text"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", send, {"sessionId": "m", "to": "628123456789", "message": NUL}, "message"),
        ("POST", send, {"sessionId": "m", "to": "628123456789", "text": NUL}, "text"),
        (
            "POST",
            send,
            {"sessionId": "m", "to": "628123456789", "message": "hi", "replyMessageId": NUL},
            "replyMessageId",
        ),
        ("POST", send, {"sessionId": NUL, "to": "628123456789", "message": "hi"}, "sessionId"),
        ("POST", "/api/v1/messages/X1/action/edit", {"sessionId": "m", "message": NUL}, "message"),
        ("POST", "/api/v1/messages/X1/action/reaction", {"sessionId": "m", "emoji": "\x00"}, "emoji"),
        ("POST", "/api/v1/messages/action/mute", {"sessionId": "m", "to": NUL}, "to"),
        ("POST", hooks, {"url": url, "name": NUL}, "name"),
        ("POST", hooks, {"url": url, "description": NUL}, "description"),
        ("POST", hooks, {"url": url, "secret": NUL}, "secret"),
        ("PATCH", f"{hooks}/primary", {"description": NUL}, "description"),
        ("POST", "/api/v1/session/create", {"sessionId": "m2", "label": NUL}, "label"),
        ("POST", "/api/v1/session/m/config", {"label": NUL}, "label"),
        ("POST", "/api/v1/sandbox/accounts", {"phone": "628123456789", "business": {"n": NUL}}, "business"),
        ("POST", "/api/v1/sandbox/messages", {"from": NUL, "to": "62811", "text": "hi"}, "from"),
        ("POST", "/api/v1/sandbox/scan", {"sessionId": "m", "phone": NUL}, "phone"),
    ]
    for method, path, body, field in cases:
        response = await client.request(method, path, json=body, headers=a)
        refused = assert_refused(response, field, what=f"{method} {path} {field}")
        assert "NUL" in refused["results"][0]["reason"]
    # The sandbox control API plays WhatsApp's side: what an account shows and the text it
    # sends cannot be refused by the gateway; it is recorded and made safe where it is written.
    shown = {"phone": "628123456700", "pushName": "Evil\x00Name", "about": "a\x00b"}
    created = await client.post("/api/v1/sandbox/accounts", json=shown, headers=a)
    assert created.status_code == 201, created.text
    assert created.json()["results"][0]["pushName"] == "Evil\x00Name"  # as WhatsApp holds it
    admin = admin_headers()
    users = [({"username": NUL}, "username"), ({"username": "valid-name", "password": NUL}, "password")]
    for body, field in users:
        assert_refused(await client.post("/api/v1/users", json=body, headers=admin), field, what=field)
    for body, field in [
        ({"username": NUL, "password": "x"}, "username"),
        ({"username": "admin", "password": NUL}, "password"),
    ]:
        assert_refused(await client.post("/api/auth/login", json=body), field, what=f"login {field}")
    # Nothing reached the log: no webhook endpoint, no sandbox account, no user.
    listed = await client.get(hooks, headers=a)
    assert listed.status_code == 200 and listed.json()["results"] == []


async def test_unpaired_surrogate_escapes_are_refused_clearly(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "surrogate-a")
    headers = {**a, "content-type": "application/json"}
    for escape in (b"\\ud800", b"\\udc00", b"x\\ud800y", b"\\ud800\\u0041"):
        content = b'{"sessionId": "m", "to": "628123456789", "message": "' + escape + b'"}'
        response = await client.post("/api/v1/messages/send/text", content=content, headers=headers)
        body = assert_refused(response, "", code=2008, what=escape.decode())
        assert "surrogate" in body["message"], body
    # The manual decoder of the session routes says the same.
    content = b'{"sessionId": "m2", "label": "\\ud800"}'
    response = await client.post("/api/v1/session/create", content=content, headers=headers)
    assert "surrogate" in assert_refused(response, "", code=2008)["message"]
    # A surrogate pair (an emoji) is ordinary text: the body decodes, the session is not open.
    content = b'{"sessionId": "m", "to": "628123456789", "message": "\\ud83d\\ude00"}'
    response = await client.post("/api/v1/messages/send/text", content=content, headers=headers)
    assert response.status_code == 409 and response.json()["code"] == 1106, response.text


async def test_text_is_bounded(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "bounds-a")
    send = "/api/v1/messages/send/text"
    too_long = {"sessionId": "m", "to": "628123456789", "message": "x" * 65_537}
    body = assert_refused(await client.post(send, json=too_long, headers=a), "message")
    assert "65536" in body["message"]
    longest = {"sessionId": "m", "to": "628123456789", "message": "x" * 65_536}
    assert (await client.post(send, json=longest, headers=a)).json()["code"] == 1106  # accepted, not open
    hooks = "/api/v1/session/m/webhooks"
    description = {"url": "https://hooks.example.com/in", "description": "d" * 201}
    assert_refused(await client.post(hooks, json=description, headers=a), "description")
    name = {"url": "https://hooks.example.com/in", "name": "n" * 101}
    assert_refused(await client.post(hooks, json=name, headers=a), "name")
    account = {"phone": "628123456789", "pushName": "p" * 101}
    assert_refused(await client.post("/api/v1/sandbox/accounts", json=account, headers=a), "pushName")
    search = await client.get("/api/v1/chats", params={"sessionId": "m", "search": "s" * 257}, headers=a)
    assert_refused(search, "search")


async def test_integers_beyond_a_bigint_are_refused(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "ints-a")
    queries = [
        (f"/api/v1/events?after={BIG}", "after"),
        (f"/api/v1/chats?sessionId=m&limit={BIG}", "limit"),
        (f"/api/v1/chats/628123456789/messages?sessionId=m&limit={BIG}", "limit"),
        (f"/api/v1/contacts?sessionId=m&offset={BIG}", "offset"),
        (f"/api/v1/contacts?sessionId=m&limit={BIG}", "limit"),
        (f"/api/v1/session/m/deliveries?before={BIG}", "before"),
        (f"/api/v1/session/m/deliveries?limit={BIG}", "limit"),
        (f"/api/v1/sandbox/accounts/628123456789/inbox?limit={BIG}", "limit"),
    ]
    for path, field in queries:
        assert_refused(await client.get(path, headers=a), field, what=path)
    stream = await client.get("/api/v1/events/stream", headers={**a, "Last-Event-ID": str(BIG)})
    assert_refused(stream, "Last-Event-ID")
    replay = "/api/v1/session/m/webhooks/primary/replay"
    for field in ("fromPosition", "toPosition", "since", "until"):
        assert_refused(await client.post(replay, json={field: BIG}, headers=a), field, what=field)
    faults = "/api/v1/sandbox/faults"
    for body, field in [
        ({"kind": "temp_ban", "sessionId": "m", "seconds": 1e308}, "seconds"),
        ({"kind": "duplicate", "sessionId": "m", "count": BIG}, "count"),
        ({"kind": "disconnect", "sessionId": "m", "reconnectAfterMs": BIG}, "reconnectAfterMs"),
        ({"kind": "slow", "sessionId": "m", "delayMs": BIG}, "delayMs"),
    ]:
        assert_refused(await client.post(faults, json=body, headers=a), field, what=field)


def cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode().rstrip("=")


async def test_times_and_cursors_out_of_range_are_refused(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "times-a")
    messages = "/api/v1/chats/628123456789/messages?sessionId=m"
    at = "2026-01-01T00:00:00+00:00"
    cases = [
        (f"{messages}&since=99999999999999999999", "since"),  # the C library's limit (OSError)
        (f"{messages}&until=99999999999999999999", "until"),
        (f"{messages}&cursor={cursor(at, 'not-a-message-id')}", "cursor"),
        (f"{messages}&cursor={cursor('99999999999999999999', str(uuid.uuid4()))}", "cursor"),
        (f"/api/v1/chats?sessionId=m&cursor={cursor(at, 'a' + chr(0) + 'b')}", "cursor"),
    ]
    for path, field in cases:
        assert_refused(await client.get(path, headers=a), field, what=path)


async def test_out_of_range_paging_is_refused(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "range-a")
    queries = [
        ("/api/v1/chats?sessionId=m&limit=-1", "limit"),
        ("/api/v1/chats?sessionId=m&limit=0", "limit"),
        ("/api/v1/chats?sessionId=m&limit=501", "limit"),
        ("/api/v1/chats/628123456789/messages?sessionId=m&limit=-1", "limit"),
        ("/api/v1/contacts?sessionId=m&offset=-5", "offset"),
        ("/api/v1/contacts?sessionId=m&limit=-1", "limit"),
        ("/api/v1/session/m/deliveries?limit=0", "limit"),
        ("/api/v1/session/m/deliveries?before=-5", "before"),
        ("/api/v1/sandbox/accounts/628123456789/inbox?limit=-1", "limit"),
        ("/api/v1/events?after=-1", "after"),
        ("/api/v1/events?limit=-1", "limit"),
    ]
    for path, field in queries:
        assert_refused(await client.get(path, headers=a), field, what=path)
    replay = "/api/v1/session/m/webhooks/primary/replay"
    for field in ("fromPosition", "toPosition", "since"):
        assert_refused(await client.post(replay, json={field: -1}, headers=a), field, what=field)
    # The bounds themselves are accepted.
    for path in ("/api/v1/chats?sessionId=m&limit=500", "/api/v1/contacts?sessionId=m&limit=1&offset=0"):
        response = await client.get(path, headers=a)
        assert response.status_code == 200, response.text


async def test_nul_in_paths_and_queries_is_refused(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "paths-a")
    admin = admin_headers()
    cases = [
        ("POST", "/api/v1/messages/a%00b/action/star", a, "messageId"),
        ("GET", "/api/v1/session/m/deliveries/%00", a, "delivery"),
        ("GET", "/api/v1/session/m/webhooks/%00", a, "endpoint"),
        ("GET", "/api/v1/chats/62812%00/messages?sessionId=m", a, "chatId"),
        ("POST", "/api/v1/users/%00/rotate-key", admin, "username"),
        ("GET", "/api/v1/admin/registries/%00/sessions", admin, "registry"),
        ("GET", "/api/v1/sandbox/accounts/%00", a, "phone"),
        ("GET", "/api/v1/chats?sessionId=m&search=a%00b", a, "search"),
        ("GET", "/api/v1/chats/628123456789/messages?sessionId=m&type=%00", a, "type"),
        ("GET", "/api/v1/events?session=%00", a, "session"),
        ("GET", "/api/v1/session/m/deliveries?endpoint=x%00", a, "endpoint"),
        ("GET", "/api/v1/session/info?sessionId=%00", a, "sessionId"),
    ]
    for method, path, headers, field in cases:
        response = await client.request(method, path, json={"sessionId": "m"}, headers=headers)
        body = assert_refused(response, field, what=path)
        assert body["results"][0]["source"] == (
            "query" if "?" in path and "%00" in path.split("?")[1] else "path"
        )


async def test_deeply_nested_json_is_refused_before_decoding(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "deep-a")
    headers = {**a, "content-type": "application/json"}
    bodies = [b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000]
    for path in ("/api/v1/messages/send/text", "/api/v1/session/create", "/api/v1/session/m/webhooks"):
        for content in bodies:
            response = await client.post(path, content=content, headers=headers)
            body = assert_refused(response, "", code=2008, what=path)
            assert "nested deeper" in body["message"]
    # Brackets inside text are text: the body decodes (and the session is not open).
    content = json.dumps({"sessionId": "m", "to": "628123456789", "message": "[{" * 5000}).encode()
    response = await client.post("/api/v1/messages/send/text", content=content, headers=headers)
    assert response.status_code == 409 and response.json()["code"] == 1106, response.text


async def test_phone_numbers_in_other_digits_are_refused(client: AsyncTestClient[Any]) -> None:
    a = await tenant_with_session(client, "digits-a")
    for to in (
        ARABIC_INDIC,
        FULLWIDTH,
        ["628123456789", in_digits(0x0660, "628123456780")],
        f"{ARABIC_INDIC}@s.whatsapp.net",
    ):
        response = await client.post(
            "/api/v1/messages/send/text", json={"sessionId": "m", "to": to, "message": "hi"}, headers=a
        )
        assert_refused(response, "to", what=str(to))
    pair = await client.get(
        "/api/v1/session/create/pair-code", params={"sessionId": "p", "phone": ARABIC_INDIC}, headers=a
    )
    assert_refused(pair, "phone")
    account = await client.post("/api/v1/sandbox/accounts", json={"phone": FULLWIDTH}, headers=a)
    assert_refused(account, "phone")
    lid = await client.post(
        "/api/v1/sandbox/accounts", json={"phone": "628123456789", "lid": in_digits(0x0660, "628")}, headers=a
    )
    assert_refused(lid, "lid")
