"""The scriptable webhook receiver (tests/e2e/receiver.py), run as a real subprocess."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.receiver import ReceiverClient, ReceiverProcess


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as process:
        yield process


@pytest.fixture
def control(receiver: ReceiverProcess) -> Iterator[ReceiverClient]:
    with receiver.client() as client:
        client.set_rules([])
        client.clear()
        yield client
        client.set_rules([])
        client.clear()


@pytest.fixture
def http(receiver: ReceiverProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        yield client


def hook(session: str, event: str = "message.received") -> dict[str, str]:
    return {"X-WAREST-SESSION": session, "X-WAREST-EVENT": event}


def test_health_and_port(receiver: ReceiverProcess, control: ReceiverClient) -> None:
    assert receiver.port > 0
    assert receiver.url == f"http://127.0.0.1:{receiver.port}"
    assert control.health()


def test_default_answer_is_recorded(control: ReceiverClient, http: httpx.Client) -> None:
    before = time.time()
    response = http.post(
        "/hooks/a?x=1",
        content=b'{"hello":"w\xc3\xb6rld"}',
        headers=[("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")],
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    (record,) = control.records()
    assert record["seq"] >= 1
    assert record["t"] >= before - 1
    assert record["method"] == "POST"
    assert record["path"] == "/hooks/a"
    assert record["query"] == "x=1"
    assert record["headers"]["content-type"] == "application/json"
    assert record["headers"]["x-multi"] == "a, b"
    assert record["body"] == '{"hello":"wörld"}'
    assert record["status"] == 200


def test_rule_matches_one_session_only(control: ReceiverClient, http: httpx.Client) -> None:
    control.set_rules(
        [
            {
                "match": {"X-WAREST-SESSION": "s1"},
                "status": 500,
                "body": {"error": "boom"},
                "headers": {"X-R": "1"},
            }
        ]
    )
    failing = http.post("/hook", json={"n": 1}, headers=hook("s1"))
    assert failing.status_code == 500
    assert failing.json() == {"error": "boom"}
    assert failing.headers["x-r"] == "1"
    assert http.post("/hook", json={"n": 2}, headers=hook("s2")).status_code == 200
    assert http.post("/hook", json={"n": 3}).status_code == 200
    assert http.post("/hook", json={"n": 4}, headers=hook("s1")).status_code == 500
    assert [(r["headers"].get("x-warest-session"), r["status"]) for r in control.records()] == [
        ("s1", 500),
        ("s2", 200),
        (None, 200),
        ("s1", 500),
    ]


def test_first_matching_rule_wins_and_front(control: ReceiverClient, http: httpx.Client) -> None:
    control.add_rule({"match": {"x-warest-session": "s1"}, "status": 503})
    control.add_rule({"status": 404})  # matches everything
    assert http.post("/hook", headers=hook("s1")).status_code == 503
    assert http.post("/hook", headers=hook("s2")).status_code == 404
    control.add_rule({"status": 202}, front=True)
    assert http.post("/hook", headers=hook("s1")).status_code == 202
    assert [rule["status"] for rule in control.rules()] == [202, 503, 404]


def test_times_expires(control: ReceiverClient, http: httpx.Client) -> None:
    control.set_rules([{"status": 503, "times": 2}])
    statuses = [http.post("/hook", json={"i": i}).status_code for i in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert control.rules() == []
    assert [r["status"] for r in control.records()] == [503, 503, 200, 200]


def test_delay(control: ReceiverClient, http: httpx.Client) -> None:
    control.set_rules([{"delay_ms": 300, "status": 201}])
    started = time.monotonic()
    response = http.post("/hook", json={})
    elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert elapsed >= 0.3


def test_hang_times_the_client_out(control: ReceiverClient, receiver: ReceiverProcess) -> None:
    control.set_rules([{"match": {"x-warest-session": "stuck"}, "hang": True}])
    with httpx.Client(base_url=receiver.url, timeout=0.3) as short, pytest.raises(httpx.TimeoutException):
        short.post("/hook", json={}, headers=hook("stuck"))
    # the hung request was recorded (no answer: status None) and other sessions are unaffected
    records = control.wait_for(lambda rs: len(rs) == 1)
    assert records[0]["status"] is None
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        assert client.post("/hook", json={}, headers=hook("free")).status_code == 200


def test_records_filtering(control: ReceiverClient, http: httpx.Client) -> None:
    http.post("/hook", json={}, headers=hook("s1", "message.received"))
    http.post("/hook", json={}, headers=hook("s2", "message.received"))
    http.post("/hook", json={}, headers=hook("s1", "session.status"))
    http.post("/hook", json={})
    everything = control.records()
    assert len(everything) == 4
    assert [r["seq"] for r in control.records(session="s1")] == [everything[0]["seq"], everything[2]["seq"]]
    assert [r["headers"]["x-warest-session"] for r in control.records(event="message.received")] == [
        "s1",
        "s2",
    ]
    (only,) = control.records(session="s1", event="session.status")
    assert only["seq"] == everything[2]["seq"]
    after = control.records(after=everything[1]["seq"])
    assert [r["seq"] for r in after] == [everything[2]["seq"], everything[3]["seq"]]
    assert control.records(after=everything[3]["seq"]) == []
    control.clear()
    assert control.records() == []
    http.post("/hook", json={})
    (fresh,) = control.records()
    assert fresh["seq"] > everything[3]["seq"]  # seq keeps increasing across clears


def test_wait_for(control: ReceiverClient, http: httpx.Client) -> None:
    http.post("/hook", json={}, headers=hook("w"))
    records = control.wait_for(lambda rs: len(rs) == 1, session="w")
    assert records[0]["headers"]["x-warest-session"] == "w"
    with pytest.raises(AssertionError, match="last records"):
        control.wait_for(lambda rs: len(rs) == 2, timeout=0.2)


def test_bad_control_requests(receiver: ReceiverProcess, control: ReceiverClient, http: httpx.Client) -> None:
    assert http.put("/_control/rules", json={"not": "a list"}).status_code == 400
    assert http.put("/_control/rules", json=[{"status": "x"}]).status_code == 400
    assert http.post("/_control/rules", content=b"{nope").status_code == 400
    assert http.get("/_control/nothing").status_code == 404
    assert control.records() == []  # control calls are never recorded


def test_keep_alive_sequential(control: ReceiverClient, receiver: ReceiverProcess) -> None:
    payloads: list[dict[str, Any]] = [{"i": i, "pad": "x" * (i % 7)} for i in range(200)]
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        for payload in payloads:
            assert client.post("/hook", json=payload).status_code == 200
    records = control.records()
    assert len(records) == 200
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 200
    assert len({r["conn"] for r in records}) == 1  # one keep-alive connection
    assert [r["body"] for r in records] == [
        httpx.Request("POST", "/", json=p).content.decode() for p in payloads
    ]
