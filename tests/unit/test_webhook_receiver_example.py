"""The receiver example of docs/webhooks.md verifies what the gateway's signer produces."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from uuid import uuid4

from warest.app.webhook_dispatch import Delivery, DeliveryPolicy, Target, request_headers
from warest.app.webhook_signing import new_webhook_secret

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signed(secrets: tuple[str, ...], text: str = "ping") -> tuple[bytes, dict[str, str]]:
    from datetime import UTC, datetime  # noqa: PLC0415

    ts = int(time.time() * 1000)
    body = json.dumps(
        {"event": "message_received", "data": {"text": text, "sender": {"chatId": "1@s.whatsapp.net"}},
         "ts": ts, "session": {"id": "s", "label": "s", "registry": "R", "username": "shop"}},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    delivery = Delivery(
        1,
        uuid4(),
        7,
        "msg_abc",
        uuid4(),
        "message_received",
        "evt_1",
        3,
        ts,
        "R",
        "s",
        "s",
        "shop",
        body,
        0,
        None,
    )
    target = Target(delivery.endpoint_id, "http://x", secrets, True)
    return body, request_headers(delivery, target, 1, datetime.now(UTC), DeliveryPolicy())


def test_the_example_verifies_both_schemes_and_rotation() -> None:
    receiver = example()
    new, old = new_webhook_secret(), "a-plain-secret-of-24-chars!!"
    body, headers = signed((new, old))
    for secrets in ([new], [old]):
        assert receiver.verify_standard(body, headers, secrets)
        assert receiver.verify_warest(body, headers, secrets, "shop")
    assert not receiver.verify_standard(body, headers, [new_webhook_secret()])
    assert not receiver.verify_warest(body, headers, [new], "someone-else")
    assert not receiver.verify_standard(body + b" ", headers, [new])
    assert not receiver.verify_standard(body, headers, [new], now=time.time() + 301)


def test_the_example_drops_duplicates_and_answers_ping_with_actions() -> None:
    receiver = example()
    seen = receiver.Seen(size=2)
    assert seen.first_time("msg_1") and not seen.first_time("msg_1")
    reply = receiver.answer(json.loads(signed((new_webhook_secret(),))[0]))
    assert reply["actions"] == [{"type": "text", "to": "{{sender.chatId}}", "text": "pong"}]
    assert receiver.answer(json.loads(signed((new_webhook_secret(),), "hello")[0])) == {"ok": True}


def test_the_example_verifies_before_during_and_after_a_rotation() -> None:
    receiver = example()
    old, new = "a-plain-secret-of-24-chars!!", new_webhook_secret()
    before, during, after = signed((old,)), signed((new, old)), signed((new,))
    assert receiver.verify_warest(*before, [old], "shop") and not receiver.verify_warest(
        *before, [new], "shop"
    )
    assert "," not in during[1]["x-warest-signature"]  # one value, as the original's receivers parse it
    for secrets in ([old], [new], [old, new]):
        assert receiver.verify_warest(*during, secrets, "shop"), secrets
        assert receiver.verify_standard(*during, secrets), secrets
    assert receiver.verify_warest(*after, [new], "shop") and not receiver.verify_warest(*after, [old], "shop")
    assert not receiver.verify_standard(*after, [old])
