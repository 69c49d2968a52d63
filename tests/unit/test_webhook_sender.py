"""The aiohttp sender enforces the egress policy on literal addresses and on every address
a host name resolves to, follows no redirects and caps replies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from warest.domain.errors import InvalidValue
from warest.infra.webhooks.client import GuardedResolver
from warest.infra.webhooks.egress import EgressPolicy
from warest.infra.webhooks.sender import MAX_REPLY_BYTES, EgressUrlGuard, HttpSender


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.reply = (
            b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(self.reply)
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, int]]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield state, port
    listener.close()
    await listener.wait_closed()


async def post(sender: HttpSender, url: str) -> tuple[int | None, str | None, bytes]:
    answer = await sender.post(url, b"{}", {"content-type": "application/json"}, 2.0)
    await sender.close()
    return answer.status, answer.error, answer.body


async def test_private_addresses_are_refused_before_any_connection(server: tuple[Server, int]) -> None:
    state, port = server
    for url in (f"http://127.0.0.1:{port}/x", f"http://localhost:{port}/x", f"http://127.1:{port}/x"):
        status, error, _ = await post(HttpSender(EgressPolicy()), url)
        assert status is None and error is not None and "egress guard" in error, (url, error)
    assert state.connections == 0


async def test_allowed_when_the_policy_permits(server: tuple[Server, int]) -> None:
    state, port = server
    cases = [
        (EgressPolicy(allow_private=True), "localhost"),
        (EgressPolicy(allow=("127.0.0.0/8",)), "127.0.0.1"),
        (EgressPolicy(allow=("localhost",)), "localhost"),
    ]
    for policy, host in cases:
        status, error, body = await post(HttpSender(policy), f"http://{host}:{port}/x")
        assert (status, error, body) == (200, None, b'{"ok":true}'), (policy, host)
    assert state.connections == 3


async def test_redirects_are_not_followed_and_big_replies_are_dropped(server: tuple[Server, int]) -> None:
    state, port = server
    state.reply = b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
    status, _, _ = await post(HttpSender(EgressPolicy(allow_private=True)), f"http://127.0.0.1:{port}/x")
    assert status == 302 and state.connections == 1
    big = b"x" * (MAX_REPLY_BYTES + 10)
    state.reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big) + big
    status, _, body = await post(HttpSender(EgressPolicy(allow_private=True)), f"http://127.0.0.1:{port}/x")
    assert status == 200 and body == b""


async def test_the_resolver_checks_every_address() -> None:
    resolver = GuardedResolver(EgressPolicy())
    with pytest.raises(Exception, match="loopback"):
        await resolver.resolve("localhost", 80)
    allowed = await GuardedResolver(EgressPolicy(allow_private=True)).resolve("localhost", 80)
    assert {r["host"] for r in allowed} <= {"127.0.0.1", "::1"} and all(r["port"] == 80 for r in allowed)


async def test_the_url_guard_names_the_field() -> None:
    guard = EgressUrlGuard(EgressPolicy())
    for url in ("http://10.0.0.1/x", "http://localhost/x", "gopher://x", "http://user:pw@example.com/"):
        with pytest.raises(InvalidValue) as error:
            await guard.check(url)
        assert error.value.field == "url"
    await guard.check("https://93.184.216.34/hook")  # a public literal address needs no DNS


async def test_a_receiver_that_never_answers_times_out() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    listener = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    sender = HttpSender(EgressPolicy(allow_private=True))
    try:
        answer = await sender.post(f"http://127.0.0.1:{port}/x", b"{}", {}, 0.2)
    finally:
        await sender.close()
        listener.close()
    assert answer.status is None and answer.error == "timed out after 0.2s"


async def test_a_refused_connection_is_an_answerless_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    status, error, _ = await post(HttpSender(EgressPolicy(allow_private=True)), f"http://127.0.0.1:{port}/x")
    assert status is None and error is not None and "Connect" in error


async def test_proxy_environment_variables_are_ignored(
    server: tuple[Server, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = server
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    status, error, _ = await post(HttpSender(EgressPolicy(allow_private=True)), f"http://127.0.0.1:{port}/x")
    assert (status, error) == (200, None)
