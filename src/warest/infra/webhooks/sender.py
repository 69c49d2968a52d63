"""The HTTP side of webhooks: posting through the egress guard, and checking URLs.

Deliveries go through aiohttp: on the dispatcher's hot path it costs ~90 us of CPU per
request against ~700 us for httpx (``bench/http_clients.py``, figures in
docs/performance.md), and the gateway delivers from the same process that serves the API.
The egress policy is the one of ``egress.py``: ``check_url`` refuses a URL early (with the
host normalised as aiohttp normalises it), and the session of ``client.guarded_session``
checks every connection's resolved peer address when it is made (see ``client.py``).
"""

from __future__ import annotations

import time

import aiohttp

from warest.app.webhook_dispatch import Answer
from warest.domain.errors import InvalidValue
from warest.infra.webhooks.client import guarded_session, refusal
from warest.infra.webhooks.egress import EgressDenied, EgressPolicy, check_url, resolve_checked

MAX_REPLY_BYTES = 256 * 1024
"""Replies are read up to this size (actions live in small JSON bodies)."""


class HttpSender:
    """``Sender`` over one aiohttp session: at most ``connections_per_origin`` connections per
    receiver host (a slow or hanging receiver holds only its own), no redirects, no proxies."""

    def __init__(self, policy: EgressPolicy, *, connections_per_origin: int = 8) -> None:
        self._policy = policy
        self._connections = connections_per_origin
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(
                self._policy, connections_per_origin=self._connections, auto_decompress=False
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
        started = time.perf_counter()
        try:
            check_url(url, self._policy)
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with self._client().post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                reply = await _read_capped(response)
                return Answer(response.status, _ms(started), dict(response.headers), reply)
        except EgressDenied as error:
            return Answer(None, _ms(started), error=f"refused by the egress guard: {error.reason}")
        except TimeoutError:
            return Answer(None, _ms(started), error=f"timed out after {timeout_s:g}s")
        except aiohttp.ClientError as error:
            return Answer(None, _ms(started), error=_describe(error))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The reply body, or b"" when it is bigger than ``MAX_REPLY_BYTES`` (too big to carry
    actions: not kept in memory)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(error: aiohttp.ClientError) -> str:
    reason = refusal(error)
    if reason is not None:
        return f"refused by the egress guard: {reason}"
    return f"{type(error).__name__}: {error}"[:300]


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class EgressUrlGuard:
    """``UrlGuard``: a URL is accepted when it is well formed and every address its host
    resolves to is permitted (checked again at every connection)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def check(self, url: str) -> None:
        try:
            target = check_url(url, self._policy)
            if target.ip is None:
                await resolve_checked(target.host, target.port, self._policy)
        except EgressDenied as error:
            raise InvalidValue("url", error.reason) from None
        except OSError as error:
            raise InvalidValue("url", f"the host cannot be resolved ({error})") from None
