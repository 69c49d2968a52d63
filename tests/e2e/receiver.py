"""A scriptable webhook receiver for end-to-end tests and benchmarks (loopback only).

Run standalone::

    python tests/e2e/receiver.py --host 127.0.0.1 --port 0 --port-file /tmp/receiver.port

Every request whose path is not under ``/_control`` is a webhook: it is recorded in memory as
``{seq, t, path, query, method, headers, body, status, conn}`` and answered according to the first
matching rule (default: ``200 {"ok": true}``). A rule is::

    {"match": {"x-warest-session": "s1"},   # all listed headers must be equal (names case-insensitive)
     "path": "/hook",                       # optional: exact request path (query string excluded)
     "status": 200, "delay_ms": 0, "body": {"ok": true}, "headers": {"x-name": "value"},
     "times": None,                         # expire after answering this many times
     "hang": False}                         # never answer; hold the connection until the peer leaves

``status`` in a record is the status chosen on arrival (``None`` for a hung request). Records are
visible as soon as the request has been read, i.e. before a delayed answer is sent. ``conn`` numbers
the TCP connection the request came on (requests sharing a keep-alive connection share it).

Control API (JSON)::

    PUT    /_control/rules              body [rule, ...] replaces the rules
    POST   /_control/rules[?front=1]    body rule, appended (or put first)
    GET    /_control/rules              the active rules (with their remaining ``times``)
    GET    /_control/records?after=<seq>&session=<x>&event=<y>
    DELETE /_control/records            clears the records (``seq`` keeps increasing)
    GET    /_control/health             {"ok": true}

The HTTP/1.1 server is a minimal hand-written parser on ``asyncio`` streams (Content-Length and
chunked request bodies, keep-alive, no pipelining guarantees beyond sequential reads).

:class:`ReceiverProcess` runs this file as a subprocess; :class:`ReceiverClient` drives it.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

CONTROL_PREFIX = "/_control"
HANG_SECONDS = 3600.0
MAX_BODY = 64 * 1024 * 1024
JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
DEFAULT_BODY = b'{"ok":true}'

# --------------------------------------------------------------------------------------------------
# rules and records
# --------------------------------------------------------------------------------------------------


class RuleError(ValueError):
    """A rule in a control request is malformed."""


@dataclass
class Rule:
    match: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    status: int = 200
    delay_ms: int = 0
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    hang: bool = False
    encoded: bytes = b""

    @classmethod
    def parse(cls, raw: Any) -> Rule:
        if not isinstance(raw, dict):
            raise RuleError("a rule must be a JSON object")
        known = {"match", "path", "status", "delay_ms", "body", "headers", "times", "hang"}
        unknown = set(raw) - known
        if unknown:
            raise RuleError(f"unknown rule fields: {sorted(unknown)}")
        match = raw.get("match") or {}
        headers = raw.get("headers") or {}
        if not isinstance(match, dict) or not all(isinstance(v, str) for v in match.values()):
            raise RuleError("match must be an object of header name -> string value")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise RuleError("headers must be an object of header name -> string value")
        status = raw.get("status", 200)
        delay_ms = raw.get("delay_ms", 0)
        times = raw.get("times")
        path = raw.get("path")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise RuleError("status must be an integer in 100..999")
        if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
            raise RuleError("delay_ms must be a non-negative integer")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise RuleError("times must be null or a positive integer")
        if path is not None and not isinstance(path, str):
            raise RuleError("path must be a string")
        body = raw.get("body", {"ok": True})
        return cls(
            match={str(k).lower(): v for k, v in match.items()},
            path=path,
            status=status,
            delay_ms=delay_ms,
            body=body,
            headers={str(k): v for k, v in headers.items()},
            times=times,
            hang=bool(raw.get("hang", False)),
            encoded=json.dumps(body, separators=(",", ":")).encode(),
        )

    def matches(self, path: str, headers: dict[str, str]) -> bool:
        if self.path is not None and self.path != path:
            return False
        return all(headers.get(name) == value for name, value in self.match.items())

    def as_json(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "path": self.path,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "body": self.body,
            "headers": self.headers,
            "times": self.times,
            "hang": self.hang,
        }


@dataclass
class Answer:
    status: int | None  # None: hang
    delay_ms: int = 0
    body: bytes = DEFAULT_BODY
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS


DEFAULT_ANSWER = Answer(status=200)


class State:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.records: list[dict[str, Any]] = []
        self.seq = 0

    def choose(self, path: str, headers: dict[str, str]) -> Answer:
        for index, rule in enumerate(self.rules):
            if not rule.matches(path, headers):
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self.rules[index]
            if rule.hang:
                return Answer(status=None)
            extra = tuple((k.lower(), v) for k, v in rule.headers.items())
            has_type = any(k == "content-type" for k, _ in extra)
            return Answer(
                status=rule.status,
                delay_ms=rule.delay_ms,
                body=rule.encoded,
                headers=extra if has_type else JSON_HEADERS + extra,
            )
        return DEFAULT_ANSWER

    def record(
        self,
        conn: int,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        status: int | None,
    ) -> None:
        self.seq += 1
        self.records.append(
            {
                "seq": self.seq,
                "t": time.time(),
                "path": path,
                "query": query,
                "method": method,
                "headers": headers,
                "body": body.decode("utf-8", errors="replace"),
                "status": status,
                "conn": conn,
            }
        )

    def select(self, after: int, session: str | None, event: str | None) -> list[dict[str, Any]]:
        start = bisect.bisect_right(self.records, after, key=lambda r: int(r["seq"]))
        out = self.records[start:]
        if session is not None:
            out = [r for r in out if r["headers"].get("x-warest-session") == session]
        if event is not None:
            out = [r for r in out if r["headers"].get("x-warest-event") == event]
        return out


# --------------------------------------------------------------------------------------------------
# HTTP/1.1 server
# --------------------------------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def render(status: int, body: bytes, headers: tuple[tuple[str, str], ...], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason(status)}", f"content-length: {len(body)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise BadRequest(413, "body too large")
        chunk = await reader.readexactly(size + 2)
        parts.append(chunk[:-2])


class Receiver:
    def __init__(self) -> None:
        self.state = State()
        self.connections: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.conn_seq = 0

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self.connection, host, port, backlog=1024)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        self.conn_seq += 1
        conn = self.conn_seq
        try:
            while await self.one_request(conn, reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except asyncio.LimitOverrunError:
            with contextlib.suppress(ConnectionError):
                writer.write(render(431, b'{"error":"headers too large"}', JSON_HEADERS, False))
        except BadRequest as error:
            payload = json.dumps({"error": str(error)}).encode()
            with contextlib.suppress(ConnectionError):
                writer.write(render(error.status, payload, JSON_HEADERS, False))
        finally:
            self.connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def one_request(
        self, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; False when the connection must be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if error.partial.strip():
                raise BadRequest(400, "truncated request head") from None
            return False
        lines = head[:-4].decode("latin-1").split("\r\n")
        while lines and not lines[0]:  # tolerate stray CRLF between requests
            lines.pop(0)
        if not lines:
            return True
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(400, "bad request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(400, "bad header line")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value

        connection = headers.get("connection", "").lower()
        keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection

        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await read_chunked(reader)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise BadRequest(400, "bad content-length") from None
            if length < 0:
                raise BadRequest(400, "bad content-length")
            if length > MAX_BODY:
                raise BadRequest(413, "body too large")
            body = await reader.readexactly(length) if length else b""

        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):
            split = urlsplit(target)
            path, query = split.path or "/", split.query

        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            status, payload = self.control(method, path, query, body)
            writer.write(render(status, payload, JSON_HEADERS, keep_alive))
            await writer.drain()
            return keep_alive

        answer = self.state.choose(path, headers)
        self.state.record(conn, method, path, query, headers, body, answer.status)
        if answer.status is None:
            await self.hang(reader)
            return False
        if answer.delay_ms:
            await asyncio.sleep(answer.delay_ms / 1000)
        writer.write(render(answer.status, answer.body, answer.headers, keep_alive))
        await writer.drain()
        return keep_alive

    @staticmethod
    async def hang(reader: asyncio.StreamReader) -> None:
        """Hold the connection without answering until the peer disconnects (or the server stops)."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(HANG_SECONDS):
                while await reader.read(65536):
                    pass

    def control(self, method: str, path: str, query: str, body: bytes) -> tuple[int, bytes]:
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        what = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            result = self.control_json(method, what, params, body)
        except (RuleError, ValueError) as error:  # JSONDecodeError is a ValueError
            return 400, json.dumps({"error": str(error)}).encode()
        if result is None:
            return 404, b'{"error":"not found"}'
        return 200, json.dumps(result, separators=(",", ":")).encode()

    def control_json(self, method: str, what: str, params: dict[str, str], body: bytes) -> Any:
        state = self.state
        if what == "health" and method == "GET":
            return {"ok": True}
        if what == "rules":
            if method == "GET":
                return [rule.as_json() for rule in state.rules]
            if method == "PUT":
                raw = json.loads(body or b"[]")
                if not isinstance(raw, list):
                    raise RuleError("PUT /_control/rules expects a JSON array of rules")
                state.rules = [Rule.parse(item) for item in raw]
                return {"ok": True, "rules": len(state.rules)}
            if method == "POST":
                rule = Rule.parse(json.loads(body or b"{}"))
                if params.get("front", "") in {"1", "true", "yes"}:
                    state.rules.insert(0, rule)
                else:
                    state.rules.append(rule)
                return {"ok": True, "rules": len(state.rules)}
        if what == "records":
            if method == "GET":
                after = int(params.get("after", "0") or 0)
                return state.select(after, params.get("session"), params.get("event"))
            if method == "DELETE":
                state.records.clear()
                return {"ok": True}
        return None


async def serve(host: str, port: int, port_file: Path | None) -> None:
    receiver = Receiver()
    bound = await receiver.start(host, port)
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    print(f"receiver listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="scriptable webhook receiver for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, default=None)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.port_file))


# --------------------------------------------------------------------------------------------------
# test-side helpers
# --------------------------------------------------------------------------------------------------


class ReceiverProcess:
    """The receiver as a subprocess in its own process group; a context manager."""

    def __init__(self, host: str = "127.0.0.1", log: Path | None = None) -> None:
        self.host = host
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="receiver-")
        self.port_file = Path(self._dir.name) / "port"
        self.log = log if log is not None else Path(self._dir.name) / "receiver.log"

    def start(self, timeout: float = 30) -> ReceiverProcess:
        handle = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--host",
                    self.host,
                    "--port",
                    "0",
                    "--port-file",
                    str(self.port_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
                start_new_session=True,
            )
        finally:
            handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"receiver exited early:\n{self.log.read_text()[-4000:]}")
            if self.port_file.exists():
                text = self.port_file.read_text().strip()
                if text:
                    self.port = int(text)
                    self.url = f"http://{self.host}:{self.port}"
                    return self
            time.sleep(0.02)
        self.stop()
        raise AssertionError("receiver did not write its port file")

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._dir.cleanup()

    def client(self) -> ReceiverClient:
        return ReceiverClient(self.url)

    def __enter__(self) -> ReceiverProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ReceiverClient:
    """Drives a receiver's control API (synchronously)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise AssertionError(f"receiver control call failed: {response.status_code} {response.text}")
        return response.json()

    def health(self) -> bool:
        return bool(self._json(self.http.get("/_control/health")).get("ok"))

    def set_rules(self, rules: list[dict[str, Any]]) -> None:
        self._json(self.http.put("/_control/rules", json=rules))

    def add_rule(self, rule: dict[str, Any], front: bool = False) -> None:
        self._json(self.http.post("/_control/rules", json=rule, params={"front": "1"} if front else None))

    def rules(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(self.http.get("/_control/rules"))
        return result

    def records(
        self, after: int = 0, session: str | None = None, event: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"after": after}
        if session is not None:
            params["session"] = session
        if event is not None:
            params["event"] = event
        result: list[dict[str, Any]] = self._json(self.http.get("/_control/records", params=params))
        return result

    def clear(self) -> None:
        self._json(self.http.delete("/_control/records"))

    def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 10.0,
        after: int = 0,
        session: str | None = None,
        event: str | None = None,
        interval: float = 0.05,
    ) -> list[dict[str, Any]]:
        """Poll the (optionally filtered) records until ``predicate(records)`` holds; return them."""
        deadline = time.monotonic() + timeout
        records: list[dict[str, Any]] = []
        while True:
            records = self.records(after=after, session=session, event=event)
            if predicate(records):
                return records
            if time.monotonic() >= deadline:
                shown = json.dumps(records[-20:], indent=1, default=str)
                raise AssertionError(f"receiver: condition not met in {timeout}s; last records:\n{shown}")
            time.sleep(interval)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ReceiverClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    main()
