"""A minimal warest webhook receiver: verifies both signatures, drops duplicates, answers
with actions. Standard library only (no framework), Python 3.11+.

    WAREST_WEBHOOK_SECRET=whsec_... WAREST_USERNAME=shop python docs/examples/webhook_receiver.py

Point a webhook at http://<this host>:8080/hook. Every check below is one a production
receiver should make; ``tests/unit/test_webhook_receiver_example.py`` runs them against
what the gateway sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

TOLERANCE_S = 300


def standard_key(secret: str) -> bytes:
    """Standard Webhooks: a ``whsec_`` secret is base64 after the prefix; any other secret
    is used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def verify_standard(
    body: bytes, headers: dict[str, str], secrets: list[str], now: float | None = None
) -> bool:
    """``webhook-signature`` = space-separated ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE_S:
        return False
    signed = f"{msg_id}.{stamp}.".encode() + body
    offered = [
        p.split(",", 1)[1] for p in headers.get("webhook-signature", "").split() if p.startswith("v1,")
    ]
    for secret in secrets:
        expected = base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False


def verify_warest(body: bytes, headers: dict[str, str], secrets: list[str], username: str) -> bool:
    """``X-WAREST-Signature: HMAC-SHA256=<hex>`` over the raw body, key = secret + username,
    signed with the newest secret; while a rotated secret is in its grace period the old
    one's signature is in ``X-WAREST-Signature-Previous`` (same format), so a receiver that
    still knows only the old secret keeps verifying. The timestamp to check is the body's
    ``ts`` (milliseconds): the header is not signed."""
    try:
        ts = json.loads(body)["ts"]
    except (ValueError, KeyError, TypeError):
        return False
    if abs(time.time() * 1000 - ts) > TOLERANCE_S * 1000:
        return False
    offered = [
        value.strip().partition("=")[2].lower()
        for name in ("x-warest-signature", "x-warest-signature-previous")
        for value in headers.get(name, "").split(",")
    ]
    for secret in secrets:
        expected = hmac.new((secret + username).encode(), body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False


class Seen:
    """Deliveries are at least once: drop a ``webhook-id`` seen before (use Redis with a TTL
    when several receivers share the work)."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, webhook_id: str) -> bool:
        if webhook_id in self._ids:
            return False
        self._ids[webhook_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def answer(payload: dict[str, Any]) -> dict[str, Any]:
    """What to do about an event: here, answer "ping" with "pong" through actions."""
    data = payload["data"]
    if payload["event"] == "message_received" and data.get("text", "").strip().lower() == "ping":
        return {"ok": True, "actions": [{"type": "text", "to": "{{sender.chatId}}", "text": "pong"}]}
    return {"ok": True}


def make_handler(secrets: list[str], username: str, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            valid = verify_standard(body, headers, secrets) and verify_warest(
                body, headers, secrets, username
            )
            if not valid:
                self._reply(401, {"ok": False})
                return
            if not seen.first_time(headers["webhook-id"]):
                self._reply(200, {"ok": True, "duplicate": True})
                return
            self._reply(200, answer(json.loads(body)))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


if __name__ == "__main__":
    secrets = [s for s in os.environ["WAREST_WEBHOOK_SECRET"].split(",") if s]
    handler = make_handler(secrets, os.environ.get("WAREST_USERNAME", ""), Seen())
    HTTPServer(("0.0.0.0", 8080), handler).serve_forever()  # noqa: S104 (an example receiver)
