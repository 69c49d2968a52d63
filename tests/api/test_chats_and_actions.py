"""Chats, messages and contacts read models, and every message and chat action, fed by
real events through the sandbox (two sessions talking to each other)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.api.test_sandbox_messaging import eventually, open_by_scan, send_text, tenant

A_PHONE, B_PHONE = "6288000000001", "6288000000002"
A_JID, B_JID = f"{A_PHONE}@s.whatsapp.net", f"{B_PHONE}@s.whatsapp.net"


async def pair_of_sessions(client: AsyncTestClient[Any]) -> tuple[dict[str, str], dict[str, str]]:
    a, b = await tenant(client, "chat-a"), await tenant(client, "chat-b")
    await open_by_scan(client, a, "sa", A_PHONE)
    await open_by_scan(client, b, "sb", B_PHONE)
    return a, b


async def messages(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, chat: str, **params: str
) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/chats/{chat}/messages", params={"sessionId": session, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def message_in(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, chat: str, wa_id: str
) -> dict[str, Any] | None:
    items = (await messages(client, headers, session, chat, limit="100"))["items"]
    return next((m for m in items if m["id"] == wa_id), None)


async def action(
    client: AsyncTestClient[Any], headers: dict[str, str], session: str, wa_id: str, name: str, **body: Any
) -> Any:
    return await client.post(
        f"/api/v1/messages/{wa_id}/action/{name}", json={"sessionId": session, **body}, headers=headers
    )


async def test_chats_and_messages_read_models(client: AsyncTestClient[Any]) -> None:
    a, b = await pair_of_sessions(client)
    sent_ids = []
    for i in range(5):
        response = await send_text(client, a, "sa", B_PHONE, f"note {i}")
        sent_ids.append(response.json()["results"][0]["messageId"])

    async def b_has_all() -> bool:
        result = await messages(client, b, "sb", A_JID, limit="50")
        return len(result["items"]) == 5

    await eventually(b_has_all)
    chats = (await client.get("/api/v1/chats", params={"sessionId": "sb"}, headers=b)).json()["results"][0]
    chat = chats["items"][0]
    assert chat["jid"] == A_JID and chat["kind"] == "direct" and chat["unreadCount"] == 5
    assert chat["lastMessage"]["text"] == "note 4" and chat["lastMessage"]["fromMe"] is False

    # Newest first, cursor pagination covers everything exactly once.
    page1 = await messages(client, b, "sb", A_JID, limit="2")
    page2 = await messages(client, b, "sb", A_JID, limit="2", cursor=page1["nextCursor"])
    page3 = await messages(client, b, "sb", A_JID, limit="2", cursor=page2["nextCursor"])
    texts = [m["text"] for m in page1["items"] + page2["items"] + page3["items"]]
    assert texts == ["note 4", "note 3", "note 2", "note 1", "note 0"]
    assert page3["nextCursor"] is None
    # Filters: search, fromMe, type.
    assert [m["text"] for m in (await messages(client, b, "sb", A_JID, search="note 3"))["items"]] == [
        "note 3"
    ]
    assert (await messages(client, b, "sb", A_JID, fromMe="true"))["items"] == []
    own = await messages(client, a, "sa", B_JID, fromMe="true")
    assert len(own["items"]) == 5 and all(m["direction"] == "out" for m in own["items"])
    timeline = [t["status"] for t in own["items"][0]["timeline"]]
    assert timeline[:2] == ["queued", "sent"] and "delivered" in timeline
    bad = await client.get(
        f"/api/v1/chats/{A_JID}/messages", params={"sessionId": "sb", "fromMe": "maybe"}, headers=b
    )
    refused(bad, 400, 2002, field="fromMe")
    # Contacts: B has heard from A.
    contacts = (await client.get("/api/v1/contacts", params={"sessionId": "sb"}, headers=b)).json()[
        "results"
    ][0]
    assert [c["jid"] for c in contacts["items"]] == [A_JID] and contacts["items"][0]["phone"] == A_PHONE
    # Another tenant sees none of it.
    other = await tenant(client, "chat-c")
    hidden = await client.get("/api/v1/chats", params={"sessionId": "sb"}, headers=other)
    refused(hidden, 404, 1101, message="Session not found")


async def test_reaction_edit_revoke_reach_the_other_side(client: AsyncTestClient[Any]) -> None:
    a, b = await pair_of_sessions(client)
    wa_id = (await send_text(client, a, "sa", B_PHONE, "original")).json()["results"][0]["messageId"]

    async def b_sees(predicate: Any) -> None:
        async def check() -> bool:
            message = await message_in(client, b, "sb", A_JID, wa_id)
            return message is not None and bool(predicate(message))

        await eventually(check)

    await b_sees(lambda m: m["text"] == "original")
    # B reacts; A sees the reaction on its message.
    reacted = await action(client, b, "sb", wa_id, "reaction", emoji="👍")
    assert reacted.status_code == 200, reacted.text

    async def a_sees_reaction() -> bool:
        message = await message_in(client, a, "sa", B_JID, wa_id)
        reactions = message["reactions"] if message else []
        return [(r["from"], r["emoji"]) for r in reactions] == [(B_JID, "👍")]

    await eventually(a_sees_reaction)
    # A edits (its own message, within 15 minutes); B sees the new text, history kept.
    edited = await action(client, a, "sa", wa_id, "edit", message="edited text")
    assert edited.status_code == 200
    await b_sees(lambda m: m["text"] == "edited text" and m["isEdited"])
    mine = await message_in(client, a, "sa", B_JID, wa_id)
    assert mine is not None and mine["edits"][0]["previousText"] == "original"
    # B may not edit or revoke A's message.
    not_mine = await action(client, b, "sb", wa_id, "edit", message="hijack")
    assert not_mine.status_code == 403 and not_mine.json()["code"] == 4001
    refused(await action(client, b, "sb", wa_id, "revoke"), 403, 2201, message="only your own messages")
    # A revokes; B sees it revoked and its text gone.
    assert (await action(client, a, "sa", wa_id, "revoke")).status_code == 200
    await b_sees(lambda m: m["revoked"] and m["text"] is None)
    after = await action(client, a, "sa", wa_id, "edit", message="too late")
    refused(after, 403, 4001, message="deleted for everyone")
    # B removes its reaction.
    unreaction = await action(client, b, "sb", wa_id, "unreaction")
    refused(unreaction, 403, 2201, message="deleted for everyone")  # revoked: no more reactions


async def test_local_actions_star_pin_delete_and_chat_flags(client: AsyncTestClient[Any]) -> None:
    a, _ = await pair_of_sessions(client)
    first = (await send_text(client, a, "sa", B_PHONE, "keep me")).json()["results"][0]["messageId"]
    second = (await send_text(client, a, "sa", B_PHONE, "hide me")).json()["results"][0]["messageId"]
    assert (await action(client, a, "sa", first, "star")).status_code == 200
    pinned = await client.post(
        f"/api/v1/chats/{B_PHONE}/messages/{first}/pin",
        json={"sessionId": "sa", "pin": True, "duration": "24h"},
        headers=a,
    )
    assert pinned.status_code == 200 and pinned.json()["results"][0]["pinnedUntil"]
    deleted = await client.delete(f"/api/v1/messages/{second}/action/delete", headers=a)
    refused(deleted, 400, 2002, field="body")  # which session? the body is required
    deleted = await action(client, a, "sa", second, "delete")
    assert deleted.status_code == 200

    async def settled() -> bool:
        items = (await messages(client, a, "sa", B_JID))["items"]
        return [m["text"] for m in items] == ["keep me"] and items[0]["starred"] and items[0]["pinnedUntil"]

    await eventually(settled)
    starred = await messages(client, a, "sa", B_JID, starred="true")
    assert [m["id"] for m in starred["items"]] == [first]
    missing = await action(client, a, "sa", "3EB0NOPE", "star")
    refused(missing, 404, 2600, message="3EB0NOPE")

    for name, check in (
        ("mute", lambda c: c["mutedUntil"] is not None),
        ("archive", lambda c: c["archived"] is True),
        ("unmute", lambda c: c["mutedUntil"] is None),
        ("unarchive", lambda c: c["archived"] is False),
    ):
        response = await client.post(
            f"/api/v1/messages/action/{name}", json={"sessionId": "sa", "to": B_PHONE}, headers=a
        )
        assert response.status_code == 200, response.text

        async def applied(check: Any = check) -> bool:
            chats = (await client.get("/api/v1/chats", params={"sessionId": "sa"}, headers=a)).json()
            return bool(check(chats["results"][0]["items"][0]))

        await eventually(applied)
    assert (
        await client.post(f"/api/v1/chats/{B_PHONE}/pin", json={"sessionId": "sa", "pin": True}, headers=a)
    ).status_code == 200
    cleared = await client.request(
        "DELETE", "/api/v1/messages/action/clear-all", json={"sessionId": "sa", "to": B_PHONE}, headers=a
    )
    assert cleared.status_code == 200

    async def emptied() -> bool:
        return (await messages(client, a, "sa", B_JID))["items"] == []

    await eventually(emptied)
    unknown = await client.post(
        "/api/v1/messages/action/explode", json={"sessionId": "sa", "to": B_PHONE}, headers=a
    )
    refused(unknown, 404, 2600)


async def test_mark_as_read_sends_read_receipts(client: AsyncTestClient[Any]) -> None:
    a, b = await pair_of_sessions(client)
    ids = [
        (await send_text(client, a, "sa", B_PHONE, f"m{i}")).json()["results"][0]["messageId"]
        for i in range(3)
    ]

    async def b_unread() -> bool:
        chats = (await client.get("/api/v1/chats", params={"sessionId": "sb"}, headers=b)).json()
        items = chats["results"][0]["items"]
        return bool(items) and items[0]["unreadCount"] == 3

    await eventually(b_unread)
    read = await client.post(f"/api/v1/chats/{A_PHONE}/read", json={"sessionId": "sb"}, headers=b)
    assert read.status_code == 200 and read.json()["results"][0]["totalMarked"] == 3

    async def a_sees_read() -> bool:
        items = (await messages(client, a, "sa", B_JID))["items"]
        return sorted(m["id"] for m in items if m["status"] == "read") == sorted(ids)

    await eventually(a_sees_read)
    chats = (await client.get("/api/v1/chats", params={"sessionId": "sb"}, headers=b)).json()["results"][0]
    assert chats["items"][0]["unreadCount"] == 0 and chats["items"][0]["readAt"]


async def test_chat_events_appear_in_the_owners_event_history(client: AsyncTestClient[Any]) -> None:
    a, b = await pair_of_sessions(client)
    await send_text(client, a, "sa", B_PHONE, "hi")
    muted = await client.post(
        "/api/v1/messages/action/mute", json={"sessionId": "sa", "to": B_PHONE}, headers=a
    )
    assert muted.status_code == 200

    async def in_history() -> bool:
        response = await client.get("/api/v1/events", params={"type": "Chat.Muted"}, headers=a)
        return [i["type"] for i in response.json()["results"]] == ["Chat.Muted"]

    await eventually(in_history)
    others = await client.get("/api/v1/events", params={"type": "Chat.Muted"}, headers=b)
    assert others.json()["results"] == []
