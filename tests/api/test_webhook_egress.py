"""The egress guard stops connections to refused addresses, whatever the URL's spelling:
a real receiver on 127.0.0.1 counts the TCP connections it accepts, and stays at zero.

Through the API (endpoint creation, the session config route, preflight) and through the
sender and the guarded session directly, where a name that resolves to 127.0.0.1 is
refused when the connection is made (the check that DNS rebinding cannot pass).
"""

# ruff: noqa: RUF001 - the point is look-alike digits, dots and letters

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from litestar.testing import AsyncTestClient

from tests.api.refusals import refused as api_refused
from tests.api.test_sandbox_messaging import open_by_scan, tenant
from tests.conftest import make_settings
from tests.egress_spellings import loopback_hosts, metadata_hosts
from warest.asgi import create_litestar
from warest.infra.webhooks.client import GuardedConnector, guarded_session, refusal
from warest.infra.webhooks.egress import EgressPolicy, destination
from warest.infra.webhooks.sender import HttpSender

STRICT = EgressPolicy()
PRIVATE_OK = EgressPolicy(allow_private=True)


class Receiver:
    """An HTTP server on 127.0.0.1, in a thread of its own (the in-process API client blocks
    the test's event loop while a request runs), that counts accepted TCP connections and
    answers 200, or a redirect to ``redirect`` when set."""

    def __init__(self) -> None:
        self.redirect: str | None = None
        self._accepted = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self._answer()

            def _answer(self) -> None:
                if owner.redirect is not None:
                    self.send_response(302)
                    self.send_header("location", owner.redirect)
                    body = b""
                else:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    body = b'{"ok":true}'
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with owner._lock:
                    owner._accepted += 1
                super().process_request(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def connections(self) -> int:
        """Connections accepted so far: every connection made before this call is counted (a
        probe connection, accepted after them, is waited for and not counted)."""
        with self._lock:
            before = self._accepted
        with socket.create_connection(("127.0.0.1", self.port)):
            pass
        for _ in range(1000):
            with self._lock:
                if self._accepted > before:
                    self._accepted -= 1
                    return self._accepted
            time.sleep(0.01)
        raise AssertionError("the probe connection was never accepted")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    yield state
    state.close()


def reaches_127_0_0_1(host: str) -> bool:
    """Whether aiohttp connects a spelling to 127.0.0.1 when nothing stops it: not the NAT64
    and 6to4 forms (routed elsewhere), nor the legacy IPv4 forms (``127.1``, ``2130706433``,
    a trailing dot ...), which aiohttp >= 3.13 refuses by itself."""
    target = destination(f"http://{host}/")
    if target.ip is None:
        return target.host == "localhost"  # "localhost." does not resolve everywhere
    try:
        canonical = ipaddress.ip_address(target.host)
    except ValueError:
        return False
    return str(canonical) in {"127.0.0.1", "::ffff:7f00:1"}


# --- the sender -----------------------------------------------------------------------------


async def test_the_sender_refuses_every_spelling_of_loopback_without_connecting(receiver: Receiver) -> None:
    sender = HttpSender(STRICT)
    try:
        for host in loopback_hosts():
            answer = await sender.post(f"http://{host}:{receiver.port}/x", b"{}", {}, 2.0)
            assert answer.status is None and answer.error is not None, host
            assert "refused by the egress guard" in answer.error, (host, answer.error)
            assert "WAREST_WEBHOOK_ALLOW_PRIVATE=true" in answer.error, (host, answer.error)
    finally:
        await sender.close()
    assert receiver.connections() == 0


async def test_the_spellings_do_reach_the_receiver_when_private_is_allowed(receiver: Receiver) -> None:
    """The refusals above are the guard's doing: the same URLs connect once permitted."""
    reaching = [host for host in loopback_hosts() if reaches_127_0_0_1(host)]
    sender = HttpSender(PRIVATE_OK)
    try:
        for host in reaching:
            answer = await sender.post(f"http://{host}:{receiver.port}/x", b"{}", {}, 2.0)
            assert (answer.status, answer.error) == (200, None), host
    finally:
        await sender.close()
    assert receiver.connections() == len(reaching) and len(reaching) >= 10, reaching


# --- the guarded session, checked at connection time ------------------------------------------


class FixedResolver(AbstractResolver):
    """A resolver that checks nothing and answers every name with ``address`` (a DNS answer
    that changed after the URL was checked)."""

    def __init__(self, address: str) -> None:
        self._address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": self._address, "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def refused(session: aiohttp.ClientSession, url: str, **options: Any) -> str:
    try:
        async with session.get(url, **options) as response:
            raise AssertionError(f"{url} answered {response.status}")
    except Exception as error:  # EgressDenied (resolver) or ClientConnectorError (socket)
        reason = refusal(error)
        if reason is None and isinstance(error, aiohttp.InvalidUrlClientError):
            return f"refused by aiohttp: {error}"  # a legacy IPv4 form, never connected either
        if reason is None and isinstance(error, aiohttp.ClientConnectorDNSError):
            return f"not resolved: {error}"  # "localhost." where the resolver does not know it
        assert reason is not None, (url, error)
        return reason


async def test_the_session_checks_every_connection_whatever_the_spelling(receiver: Receiver) -> None:
    """No URL check before: the connection itself is refused (IP literals never reach a
    resolver, so the socket's peer address is what is judged)."""
    async with guarded_session(STRICT) as session:
        for host in loopback_hosts():
            reason = await refused(session, f"http://{host}:{receiver.port}/x")
            if reaches_127_0_0_1(host):
                assert "loopback" in reason, (host, reason)
    assert receiver.connections() == 0


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(receiver: Receiver) -> None:
    async with guarded_session(STRICT) as session:
        reason = await refused(session, f"http://localhost:{receiver.port}/x")
        assert "localhost resolves to a loopback address 127.0.0.1" in reason
    connector = GuardedConnector(STRICT, resolver=FixedResolver("127.0.0.1"))
    async with aiohttp.ClientSession(connector=connector) as session:
        reason = await refused(session, f"http://rebound.example:{receiver.port}/x")
        assert reason.startswith("connection to a loopback address 127.0.0.1"), reason
    assert receiver.connections() == 0
    connector = GuardedConnector(PRIVATE_OK, resolver=FixedResolver("127.0.0.1"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://rebound.example:{receiver.port}/x") as response,
    ):
        assert response.status == 200
    assert receiver.connections() == 1


async def test_redirects_cannot_escape(receiver: Receiver) -> None:
    """A permitted receiver redirecting to a refused address: the sender does not follow,
    and a session that follows redirects checks the next hop's connection too."""
    target = Receiver()
    receiver.redirect = f"http://127.0.0.1:{target.port}/next"
    policy = EgressPolicy(allow=("localhost",))  # the first hop only, by its name
    try:
        sender = HttpSender(policy)
        answer = await sender.post(f"http://localhost:{receiver.port}/x", b"{}", {}, 2.0)
        await sender.close()
        assert answer.status == 302
        async with guarded_session(policy) as session:
            reason = await refused(session, f"http://localhost:{receiver.port}/x", allow_redirects=True)
        assert "loopback address 127.0.0.1" in reason
        assert receiver.connections() == 2 and target.connections() == 0
    finally:
        target.close()


# --- through the API ---------------------------------------------------------------------------


@pytest.fixture
async def strict_app(database_url: str, schema: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(database_url, schema, tmp_path)  # WAREST_WEBHOOK_ALLOW_PRIVATE off
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as client:
        yield client


async def test_the_api_refuses_every_spelling_and_never_connects(
    strict_app: AsyncTestClient[Any], receiver: Receiver
) -> None:
    a = await tenant(strict_app, "ssrf")
    await open_by_scan(strict_app, a, "s", "6281000000009")
    for host in [*loopback_hosts(), *metadata_hosts()]:
        url = f"http://{host}:{receiver.port}/x"
        created = await strict_app.post("/api/v1/session/s/webhooks", json={"url": url}, headers=a)
        problem = api_refused(created, 400, 2002, field="url")["results"][0]
        assert "WAREST_WEBHOOK_ALLOW_PRIVATE" in problem["reason"], (host, problem)
        preflight = await strict_app.post(
            "/api/v1/webhook/preflight", json={"sessionId": "s", "url": url, "secret": "x" * 24}, headers=a
        )
        assert preflight.status_code == 207, (host, preflight.text)
        result = preflight.json()["results"][0]
        assert result["ok"] is False and "WAREST_WEBHOOK_ALLOW_PRIVATE" in result["error"], (host, result)
    config = await strict_app.post(
        "/api/v1/session/s/config", json={"webhookUrl": f"http://１２７.0.0.1:{receiver.port}/x"}, headers=a
    )
    api_refused(config, 400, 2002, field="webhookUrl")
    assert "WAREST_WEBHOOK_ALLOW_PRIVATE" in config.json()["results"][0]["reason"], config.text
    assert receiver.connections() == 0


async def test_with_private_allowed_the_api_reaches_loopback_but_never_metadata(
    database_url: str, schema: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(database_url, schema, tmp_path, WAREST_WEBHOOK_ALLOW_PRIVATE="true")
    async with AsyncTestClient(app=create_litestar(settings), base_url="http://127.0.0.1:7308") as client:
        a = await tenant(client, "trusted")
        await open_by_scan(client, a, "s", "6281000000008")
        for host in metadata_hosts():
            created = await client.post(
                "/api/v1/session/s/webhooks", json={"url": f"http://{host}/latest/meta-data"}, headers=a
            )
            problem = api_refused(created, 400, 2002, field="url")["results"][0]
            assert "metadata" in problem["reason"], (host, problem)
        url = f"http://①②⑦.0.0.1:{receiver.port}/x"
        preflight = await client.post(
            "/api/v1/webhook/preflight", json={"sessionId": "s", "url": url, "secret": "x" * 24}, headers=a
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.json()["results"][0]["ok"] is True
        created = await client.post("/api/v1/session/s/webhooks", json={"url": url}, headers=a)
        assert created.status_code == 201, created.text
    assert receiver.connections() == 1
