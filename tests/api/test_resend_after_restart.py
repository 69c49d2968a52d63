"""A message that reached WhatsApp but whose ``Sent`` was never stored (the database went away
at that moment) is sent again at the next start: with the WhatsApp id it was queued with, so
the recipient, who ignores a second delivery of an id it has, holds it once."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import eventually, message_events, open_by_scan, send_text, tenant
from tests.conftest import db_rows, make_settings
from warest.asgi import create_litestar
from warest.domain.messages import Message
from warest.infra.eventstore.adapter import AsyncEventStore


async def test_a_sent_message_whose_sent_was_lost_is_received_once_after_a_restart(
    database_url: str, schema: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, schema, tmp_path, WAREST_SEND_WAIT_MS="500")
    save = AsyncEventStore.save

    async def save_without_sent(self: AsyncEventStore, *aggregates: Any) -> int:
        if any(isinstance(e, Message.Sent) for a in aggregates for e in a.pending_events):
            raise ConnectionError("terminating connection due to administrator command")
        return await save(self, *aggregates)

    async with AsyncTestClient(app=create_litestar(settings)) as first:
        a = await tenant(first, "resend")
        await open_by_scan(first, a, "main", "6286000000001")
        created = await first.post("/api/v1/sandbox/accounts", json={"phone": "6286000000002"}, headers=a)
        assert created.status_code == 201
        monkeypatch.setattr(AsyncEventStore, "save", save_without_sent)
        answer = await send_text(first, a, "main", "6286000000002", "only once")
        assert answer.status_code in (200, 202), answer.text  # it did leave; what is stored differs
        wa_id = answer.json()["results"][0]["messageId"]
        inbox = (await first.get("/api/v1/sandbox/accounts/6286000000002/inbox", headers=a)).json()
        assert [m["messageId"] for m in inbox["results"]] == [wa_id]  # it did reach the recipient
        # The store stays down until this process has stopped: its receipt path, which would
        # record the lost Sent from the recipient's receipt, never gets through either.
    monkeypatch.setattr(AsyncEventStore, "save", save)
    assert [kind for kind, _ in await message_events(settings, wa_id)] == ["Queued"]

    async with AsyncTestClient(app=create_litestar(settings)) as second:  # the next start

        async def sent() -> bool:
            return "Sent" in [kind for kind, _ in await message_events(settings, wa_id)]

        await eventually(sent)
        states = dict(await message_events(settings, wa_id))
        assert states["Sent"]["wa_id"] == wa_id  # sent again under the id it was queued with
        inbox = (await second.get("/api/v1/sandbox/accounts/6286000000002/inbox", headers=a)).json()
        assert [(m["messageId"], m["text"]) for m in inbox["results"]] == [(wa_id, "only once")]
    rows = await db_rows(settings, "SELECT count(*) AS n FROM sandbox_inbox WHERE wa_id = $1", wa_id)
    assert rows[0]["n"] == 1
