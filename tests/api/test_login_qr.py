"""Login QRs are secrets: the event log records that a QR was shown, never the QR string, and
the QR still reaches the API answer and the webhook ``qr`` event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.test_sandbox_messaging import tenant
from tests.api.test_webhooks import FAST, hooks, receiver, records  # noqa: F401 (fixtures)
from tests.conftest import db_rows, make_settings
from tests.e2e.receiver import ReceiverClient, ReceiverProcess
from warest.asgi import create_litestar


async def test_the_qr_reaches_the_api_and_the_webhook_but_not_the_log(
    database_url: str, schema: str, tmp_path: Path, hooks: ReceiverClient, receiver: ReceiverProcess  # noqa: F811
) -> None:
    settings = make_settings(
        database_url, schema, tmp_path, **FAST,
        WEBHOOK_DEFAULT_URL=f"{receiver.url}/qr", WEBHOOK_DEFAULT_SECRET="default-secret-for-all-sessions",
    )  # fmt: skip
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as app:
        a = await tenant(app, "qr-owner")
        created = await app.post("/api/v1/session/create", json={"sessionId": "main"}, headers=a)
        assert created.status_code == 202, created.text
        qr = created.json()["results"][0]["qrString"]
        assert qr.startswith("2@")

        def shown(rs: list[dict[str, Any]]) -> bool:
            return any('"tags":"qr"' in r["body"] for r in rs)

        found = await records(hooks, shown)
        body = next(json.loads(r["body"]) for r in found if '"tags":"qr"' in r["body"])
        assert body["event"] == "session_status"
        assert (body["data"]["qr"], body["data"]["attempt"], body["data"]["qrDuration"]) == (qr, 1, 20)

        states = await db_rows(
            settings, "SELECT topic, convert_from(state, 'UTF8') AS state FROM warest_events"
        )
        issued = [json.loads(r["state"]) for r in states if r["topic"].endswith("Session.QrIssued")]
        assert issued and all("qr" not in state and state["_v"] == 2 for state in issued)
        assert not [r for r in states if qr in r["state"]]

        history = (await app.get("/api/v1/events?type=Session.QrIssued", headers=a)).json()["results"]
        assert [i["data"] for i in history] == [{"duration_s": 20, "attempt": 1}]


async def test_the_pairing_code_reaches_the_api_and_the_webhook_but_not_the_log(
    database_url: str, schema: str, tmp_path: Path, hooks: ReceiverClient, receiver: ReceiverProcess  # noqa: F811
) -> None:
    settings = make_settings(
        database_url, schema, tmp_path, **FAST,
        WEBHOOK_DEFAULT_URL=f"{receiver.url}/code", WEBHOOK_DEFAULT_SECRET="default-secret-for-all-sessions",
    )  # fmt: skip
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as app:
        a = await tenant(app, "code-owner")
        paired = await app.get("/api/v1/session/create/pair-code?sessionId=main&phone=6282222222222",
                               headers=a)  # fmt: skip
        assert paired.status_code == 200, paired.text
        assert paired.json()["code"] == 1000 and paired.json()["message"] == "Pair code generated"
        code = paired.json()["results"][0]["pairCode"]
        assert len(code) == 9 and code[4] == "-"

        def shown(rs: list[dict[str, Any]]) -> bool:
            return any('"tags":"pairing_code"' in r["body"] for r in rs)

        found = await records(hooks, shown)
        body = next(json.loads(r["body"]) for r in found if '"tags":"pairing_code"' in r["body"])
        assert body["event"] == "session_status"
        assert (body["data"]["pairingCode"], body["data"]["phone"]) == (code, "6282222222222")

        states = await db_rows(
            settings, "SELECT topic, convert_from(state, 'UTF8') AS state FROM warest_events"
        )
        issued = [json.loads(r["state"]) for r in states if r["topic"].endswith("Session.PairingCodeIssued")]
        assert issued and all("code" not in state and state["_v"] == 2 for state in issued)
        assert not [r for r in states if code in r["state"] or code.replace("-", "") in r["state"]]

        history = await app.get("/api/v1/events?type=Session.PairingCodeIssued", headers=a)
        assert [i["data"] for i in history.json()["results"]] == [{"phone": "6282222222222"}]
