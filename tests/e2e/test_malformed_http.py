"""Malformed HTTP framing on the real server process: a chunked body whose chunk size is not
hexadecimal is a client error (400), never a 500, with granian and with uvicorn. (uvicorn
refuses it itself; granian hands the app a disconnect while the body is read, which the
framework alone would answer with 500.)"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess, sandbox_env

ADMIN_KEY = "wrst_e2e-malformed-admin-key-0123456789abcdefghijklm"


@pytest.fixture(params=["granian", "uvicorn"])
def server(
    request: pytest.FixtureRequest, database_url: str, schema: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    env = sandbox_env(database_url, schema, tmp_path / "data", ADMIN_KEY, WAREST_SERVER=request.param)
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Sends ``request`` as it is and returns all the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_a_chunk_size_that_is_not_hexadecimal_answers_400(server: ServerProcess) -> None:
    request = (
        b"POST /api/v1/messages/send/text HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"X-WAREST-API-KEY: " + ADMIN_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    )
    answer = raw_exchange(server.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:500]
    if b"application/json" in head.lower():  # our answer (granian), not the server's own
        envelope = json.loads(body)
        assert envelope["code"] == 2000 and "chunk size" in envelope["message"], envelope
