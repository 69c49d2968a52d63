"""A secret rotation does not break receivers written like the original's examples.

Those receivers (e.g. the original's ``examples/webhook-receivers/node-express.js``) read
``X-WAREST-Signature`` as ONE ``HMAC-SHA256=<hex>`` value: they split it on ``=``, compare
the hex against the HMAC of each secret they accept, and check ``X-WAREST-Timestamp``.
While a rotated secret is in its grace period the gateway signs with both secrets; the
second signature must travel where such a receiver does not trip over it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from warest.app.webhook_dispatch import Delivery, DeliveryPolicy, Target, request_headers
from warest.app.webhook_signing import (
    HEADER_WAREST_SIGNATURE,
    HEADER_WAREST_SIGNATURE_PREVIOUS,
    new_webhook_secret,
    verify_standard,
)
from warest.domain.webhooks import WebhookEndpoint

USERNAME = "shop"


def original_receiver(
    secrets: list[str], *, read_previous: bool = False, clock: Callable[[], float] = time.time
) -> Callable[[bytes, dict[str, str]], bool]:
    """A receiver the way the original's examples are written; with ``read_previous`` it
    also reads the rotation header (one value, same format)."""

    def verify(body: bytes, headers: dict[str, str]) -> bool:
        stamp = int(headers.get("x-warest-timestamp", "0"))
        if abs(clock() * 1000 - stamp) > 5 * 60 * 1000:
            return False
        offered = [headers.get("x-warest-signature", "")]
        if read_previous and "x-warest-signature-previous" in headers:
            offered.append(headers["x-warest-signature-previous"])
        for value in offered:
            parts = value.split("=")
            if len(parts) != 2 or parts[0] != "HMAC-SHA256":
                continue
            for secret in secrets:
                expected = hmac.new((secret + USERNAME).encode(), body, hashlib.sha256).hexdigest()
                if hmac.compare_digest(expected, parts[1]):
                    return True
        return False

    return verify


Sent = tuple[bytes, dict[str, str], datetime]


def delivery_at(endpoint: WebhookEndpoint, now: datetime) -> Sent:
    """What the gateway sends at ``now`` (secrets sealed as themselves here)."""
    ts = int(now.timestamp() * 1000)
    body = json.dumps(
        {"event": "message_received", "data": {"text": "hi"}, "ts": ts,
         "session": {"id": "s", "label": "s", "registry": "R", "username": USERNAME}},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    delivery = Delivery(
        1, uuid4(), 7, "msg_abc", endpoint.id, "message_received", "evt_1", 3, ts, "R", "s", "s",
        USERNAME, body, 0, None,
    )  # fmt: skip
    target = Target(endpoint.id, endpoint.url, tuple(endpoint.secrets_sealed(now)), True)
    return body, request_headers(delivery, target, 1, now, DeliveryPolicy()), now


def test_rotation_keeps_the_originals_receivers_working() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    endpoint = WebhookEndpoint.add("R", "s", "primary", "https://hooks.example/x", old)
    before = delivery_at(endpoint, datetime.now(UTC))
    rotated_at = datetime.now(UTC)
    endpoint.rotate_secret(new, rotated_at + timedelta(hours=1))
    during = delivery_at(endpoint, rotated_at + timedelta(seconds=1))
    after = delivery_at(endpoint, rotated_at + timedelta(hours=2))

    def verifies(sent: Sent, secrets: list[str], *, read_previous: bool = False) -> bool:
        body, headers, at = sent
        receiver = original_receiver(secrets, read_previous=read_previous, clock=at.timestamp)
        return receiver(body, headers)

    # X-WAREST-Signature is always the original's one value, signed with the newest secret
    for _, headers, _ in (before, during, after):
        assert (
            headers[HEADER_WAREST_SIGNATURE].count("=") == 1 and "," not in headers[HEADER_WAREST_SIGNATURE]
        )
    assert (
        HEADER_WAREST_SIGNATURE_PREVIOUS not in before[1] and HEADER_WAREST_SIGNATURE_PREVIOUS not in after[1]
    )

    # before: the old secret
    assert verifies(before, [old]) and not verifies(before, [new])
    # during the grace period: a receiver that knows both secrets (the defect: it answered 401)
    assert verifies(during, [old, new]) and verifies(during, [new, old])
    assert verifies(during, [new])  # already switched to the new secret
    # (one that reads only X-WAREST-Signature and knows only the old secret must add the new
    # one when it is rotated: the header is signed with the newest, as in the original)
    assert not verifies(during, [old])
    # ... and one that reads the rotation header verifies with either secret alone
    assert verifies(during, [old], read_previous=True) and verifies(during, [new], read_previous=True)
    assert not verifies(during, [new_webhook_secret()], read_previous=True)
    # after: the new secret only
    assert verifies(after, [new]) and verifies(after, [old, new])
    assert not verifies(after, [old], read_previous=True)
    stale = original_receiver([new], clock=lambda: after[2].timestamp() + 600)
    assert not stale(after[0], after[1])  # the receiver's timestamp check is live

    # Standard Webhooks carries both, space-separated, during the grace period only
    assert len(during[1]["webhook-signature"].split()) == 2
    assert len(before[1]["webhook-signature"].split()) == len(after[1]["webhook-signature"].split()) == 1
    for secret in (old, new):
        verify_standard(during[0], during[1], [secret])
