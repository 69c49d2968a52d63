"""The HTTP side of webhooks: posting through the egress guard, and checking URLs."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import httpx

from warest.app.webhook_dispatch import Answer
from warest.domain.errors import InvalidValue
from warest.infra.webhooks.egress import (
    EgressDenied,
    EgressPolicy,
    check_url,
    guarded_client,
    resolve_checked,
)

MAX_REPLY_BYTES = 256 * 1024
"""Replies are read up to this size (actions live in small JSON bodies)."""


class HttpSender:
    """``Sender`` over guarded ``httpx.AsyncClient`` pools (no redirects, no proxies), one per
    receiver origin: a slow or hanging receiver holds its own connections only, and each
    pool stays small (httpx's per-request cost grows with the connections a pool holds)."""

    def __init__(
        self, policy: EgressPolicy, *, connections_per_origin: int = 8, max_origins: int = 256
    ) -> None:
        self._policy = policy
        self._connections = connections_per_origin
        self._max_origins = max_origins
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()

    def _client(self, url: str) -> httpx.AsyncClient:
        parts = httpx.URL(url)
        origin = f"{parts.scheme}://{parts.netloc.decode('ascii')}"
        client = self._clients.get(origin)
        if client is None:
            client = self._clients[origin] = guarded_client(
                self._policy,
                timeout=httpx.Timeout(10.0),
                limits=httpx.Limits(
                    max_connections=self._connections, max_keepalive_connections=self._connections
                ),
            )
            if len(self._clients) > self._max_origins:
                _, oldest = self._clients.popitem(last=False)
                self._closing.add(asyncio.ensure_future(oldest.aclose()))
        else:
            self._clients.move_to_end(origin)
        return client

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
        started = time.perf_counter()
        try:
            client = self._client(url)
            request = client.build_request("POST", url, content=body, headers=headers, timeout=timeout_s)
            response = await client.send(request, stream=True)
            try:
                reply = await _read_capped(response)
            finally:
                await response.aclose()
        except EgressDenied as error:
            return Answer(None, _ms(started), error=f"refused by the egress guard: {error.reason}")
        except httpx.TimeoutException:
            return Answer(None, _ms(started), error=f"timed out after {timeout_s:g}s")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return Answer(None, _ms(started), error=f"{type(error).__name__}: {error}"[:300])
        return Answer(response.status_code, _ms(started), dict(response.headers), reply)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(c.aclose() for c in clients), *self._closing, return_exceptions=True)


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return b""  # too big to carry actions: ignored
        chunks.append(chunk)
    return b"".join(chunks)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class EgressUrlGuard:
    """``UrlGuard``: a URL is accepted when it is well formed and every address its host
    resolves to is permitted (checked again at every connection)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def check(self, url: str) -> None:
        try:
            check_url(url, self._policy)
            parts = httpx.URL(url)
            await resolve_checked(
                parts.host, parts.port or (443 if parts.scheme == "https" else 80), self._policy
            )
        except EgressDenied as error:
            raise InvalidValue("url", error.reason) from None
        except OSError as error:
            raise InvalidValue("url", f"the host cannot be resolved ({error})") from None
