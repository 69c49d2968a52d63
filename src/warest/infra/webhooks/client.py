"""An aiohttp client that can reach only what an ``EgressPolicy`` permits, checked at
connection time: ``guarded_session(policy)``. For every server-side request to a URL a user
supplied (webhook deliveries and preflights; media URL fetches can use it as well).

Every connection the session opens (redirect hops included) passes two checks:

* a host *name* is resolved by ``GuardedResolver``, which refuses it when any of its
  addresses is not permitted; aiohttp connects only to the addresses it returned, and
  resolves again for every connection (no DNS cache), so a changed DNS answer cannot slip
  through ("DNS rebinding");
* every socket is created by ``GuardedConnector``'s socket factory, which refuses the peer
  address before connecting (``egress.check_peer``). This also covers IP literals, which
  aiohttp connects to without asking the resolver, in whatever spelling the URL used
  (``①②⑦.0.0.1``, ``0x7f.1``, ``[::ffff:7f00:1]`` ...): the socket only sees the address.

A refusal is ``EgressDenied`` (from the resolver) or an aiohttp ``ClientConnectorError``
whose ``__cause__`` is ``PeerDenied`` (from the socket factory); ``refusal(error)`` finds
the reason in either. The session ignores proxy environment variables; callers should not
pass ``proxy=`` (the check would then judge the proxy, not the destination).
"""

from __future__ import annotations

import socket
from contextvars import ContextVar
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from warest.infra.webhooks.egress import EgressDenied, EgressPolicy, check_peer, resolve_checked

_CONNECTING_TO: ContextVar[str | None] = ContextVar("warest_egress_host", default=None)
"""The URL host of the connection being opened in this task (for host names in ``allow``)."""


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses a host when any address it resolves to is not permitted."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self._policy)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose every socket is checked against ``policy`` before it connects.

    ``resolver`` defaults to ``GuardedResolver(policy)``; whatever resolver is given, the
    socket check still applies. Other keyword arguments go to ``TCPConnector``.
    """

    def __init__(
        self, policy: EgressPolicy, *, resolver: AbstractResolver | None = None, **options: Any
    ) -> None:
        self._policy = policy
        super().__init__(
            resolver=resolver if resolver is not None else GuardedResolver(policy),
            use_dns_cache=False,  # every connection resolves and checks again
            socket_factory=self._guarded_socket,
            **options,
        )

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        token = _CONNECTING_TO.set(req.url.raw_host)
        try:
            return await super().connect(req, traces, timeout)
        finally:
            _CONNECTING_TO.reset(token)

    def _guarded_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, address = addr_info
        check_peer(str(address[0]), self._policy, _CONNECTING_TO.get())
        return socket.socket(family=family, type=kind, proto=proto)


def guarded_session(
    policy: EgressPolicy, *, connections_per_origin: int = 8, **options: Any
) -> aiohttp.ClientSession:
    """A ``ClientSession`` that reaches only destinations ``policy`` permits (see the module
    docstring): at most ``connections_per_origin`` connections per host (a slow host holds
    only its own), proxy variables ignored. ``options`` go to ``ClientSession``."""
    connector = GuardedConnector(
        policy, limit=0, limit_per_host=connections_per_origin, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, **options)


def refusal(error: BaseException) -> str | None:
    """The egress guard's reason when ``error`` (as raised by a guarded session) is a refusal."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, EgressDenied):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    return None
