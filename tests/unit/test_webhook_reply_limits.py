"""A receiver cannot pile up work in the gateway through its replies: a cap on replies
waiting per session, and a time limit for one reply's actions."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import pytest

import warest.app.webhooks as webhooks
from warest.app.webhook_dispatch import Answer, Delivery
from warest.app.webhooks import MAX_PENDING_REPLIES, WebhookActions

SESSION = uuid4()
BODY = json.dumps({"event": "message_received", "data": {"text": "hi"}, "ts": 1, "session": {}}).encode()


def delivery(position: int) -> Delivery:
    return Delivery(
        position, uuid4(), position, f"msg_{position}", SESSION, "message_received", "evt", position,
        1, "REG", "s", "s", "u", BODY, 0, None,
    )  # fmt: skip


def reply(*actions: dict[str, Any]) -> Answer:
    body = json.dumps({"actions": list(actions)}).encode()
    return Answer(200, 1, {"content-type": "application/json"}, body)


def handler() -> WebhookActions:
    none: Any = None  # no action here reaches a service
    return WebhookActions(none, none, none, default_country_code="62", default_delay_ms=0)


async def test_replies_waiting_per_session_are_capped() -> None:
    actions = handler()
    slow = reply({"act": "delay", "ms": 60_000})
    waiting = [actions.accept(delivery(i), slow) for i in range(MAX_PENDING_REPLIES)]
    tasks = [asyncio.ensure_future(w) for w in waiting if w is not None]
    assert len(tasks) == MAX_PENDING_REPLIES
    refused = actions.accept(delivery(99), slow)
    assert refused is not None
    report = await refused
    assert report is not None and report[0]["ok"] is False and "waiting to run" in report[0]["error"]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    accepted_again = actions.accept(delivery(100), reply({"type": "noop"}))
    assert accepted_again is not None
    assert await accepted_again == [
        {"path": "0", "kind": "noop", "ok": True, "error": None, "message_id": None}
    ]


async def test_a_reply_runs_for_a_limited_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "ACTIONS_TIMEOUT_S", 0.05)
    pending = handler().accept(delivery(1), reply({"act": "delay", "ms": 5_000}, {"type": "noop"}))
    assert pending is not None
    report = await pending
    assert report is not None and len(report) == 1 and "did not finish within" in report[0]["error"]


async def test_a_reply_without_actions_starts_nothing() -> None:
    assert (
        handler().accept(delivery(1), Answer(200, 1, {"content-type": "application/json"}, b'{"ok":true}'))
        is None
    )
    invalid = handler().accept(delivery(1), reply(*[{"type": "noop"}] * 51))
    assert invalid is not None
    report = await invalid
    assert report is not None and report[0]["ok"] is False and "actions" in report[0]["error"]
