"""SSRF guard for every server-side HTTP request to a user-supplied URL.

Two layers:

* ``check_url`` is a syntactic check (scheme, credentials, port, length, and hosts that are
  literal addresses in any spelling ``getaddrinfo`` accepts: ``127.1``, ``0x7f.1``,
  ``2130706433``, ``[::ffff:127.0.0.1]`` ...). Use it to reject a URL early, e.g. when a
  webhook is configured; it does not resolve names.
* ``guarded_client`` returns an ``httpx.AsyncClient`` whose connection pool uses
  ``GuardedNetworkBackend``: at connect time the backend resolves the host itself, refuses if
  *any* address is blocked, then opens the TCP connection to one of the checked addresses (so a
  DNS answer that changes between check and connect, "DNS rebinding", cannot slip through).
  TLS SNI and certificate verification still use the host name: httpcore takes them from the
  request origin, not from the address the socket was opened to. The client does not follow
  redirects and ignores proxy environment variables; each request's URL also passes
  ``check_url`` (an httpx request hook).

Denials raise ``EgressDenied`` (not an ``httpx.HTTPError``) straight out of ``client.post``
and friends: httpx only maps httpcore's own exceptions, so callers ``except EgressDenied`` and
read ``.reason``. DNS failures surface as ``httpx.ConnectError``, a resolution+connect that
exceeds the connect timeout as ``httpx.ConnectTimeout``.

Policy: an address is blocked when it is not publicly routable (see ``blocked``).
``allow_private`` permits every such address except the cloud metadata endpoints (meant for
tests and trusted single-host setups). ``allow`` lists CIDRs or exact host names that are
permitted whatever they resolve to (metadata included: an explicit entry is deliberate).
The backend is asyncio-only (it resolves with the running loop).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "a 'this network' address"),
    (ipaddress.IPv4Network("100.64.0.0/10"), "a carrier-grade NAT address"),
    (ipaddress.IPv6Network("fc00::/7"), "a unique-local address"),
    (ipaddress.IPv6Network("fec0::/10"), "a site-local address"),
    (ipaddress.IPv6Network("2001::/32"), "a Teredo address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_IPV4_COMPATIBLE, "an IPv4-compatible IPv6 address"),
)
_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)


class EgressDenied(Exception):
    """A request to a user-supplied URL was refused; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _normal_host(host: str) -> str:
    return host.strip().lower().removesuffix(".")


@functools.lru_cache(maxsize=64)
def _parse_allow(allow: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            if "/" in entry or not _normal_host(entry) or re.fullmatch(r"[0-9.:]+", entry.strip()):
                raise ValueError(f"egress allow entry {entry!r} is neither a CIDR nor a host name") from None
            hosts.add(_normal_host(entry))
    return tuple(networks), frozenset(hosts)


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations outbound requests may reach (see the module docstring)."""

    allow_private: bool = False
    allow: tuple[str, ...] = ()
    https_only: bool = False

    def __post_init__(self) -> None:
        _parse_allow(self.allow)  # fail fast on a malformed entry

    def host_allowed(self, host: str) -> bool:
        return _normal_host(host) in _parse_allow(self.allow)[1]

    def address_allowed(self, ip: IPAddress) -> bool:
        candidates = [ip, *_transparent_ipv4(ip)]
        networks = _parse_allow(self.allow)[0]
        return any(address in network for address in candidates for network in networks)


# --- Addresses ------------------------------------------------------------------------------


def _transparent_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses that ``ip`` reaches directly: IPv4-mapped and NAT64 (64:ff9b::/96)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def _tunnelled_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.sixtofour is not None:
        found.append(("a 6to4 address", ip.sixtofour))
    if ip.teredo is not None:
        found.extend(("a Teredo address", part) for part in ip.teredo)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        found.append(("an IPv4-compatible IPv6 address", ipaddress.IPv4Address(int(ip))))
    return found


def _embedded_reason(ip: ipaddress.IPv6Address) -> str | None:
    for kind, inner in _tunnelled_ipv4(ip):
        reason = blocked(inner)
        if reason is not None:
            return f"{kind} {ip} embedding {reason}"
    return None


def _category(ip: IPAddress) -> str | None:
    if ip.is_unspecified or ip.is_loopback:  # before ::/96, which contains :: and ::1
        return "an unspecified address" if ip.is_unspecified else "a loopback address"
    for network, label in _SPECIAL:
        if ip.version == network.version and ip in network:
            return label
    for attribute, label in _PROPERTIES:
        if getattr(ip, attribute, False):
            return label
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if not ip.is_global:
        return "a non-global address"
    return None


def blocked(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be reached (e.g. ``"a private address 10.1.2.3"``), or None if public.

    IPv4-mapped and NAT64 addresses are judged by the IPv4 address they carry; 6to4, Teredo
    and IPv4-compatible addresses are blocked when the embedded IPv4 address is.
    """
    ip = ipaddress.ip_address(str(ip).split("%", 1)[0])  # drop an IPv6 scope id
    if ip in _METADATA:
        return f"the cloud metadata address {ip}"
    mapped = _transparent_ipv4(ip)
    if mapped:
        reason = blocked(mapped[0])
        return None if reason is None else f"{ip}, which maps to {reason}"
    if isinstance(ip, ipaddress.IPv6Address) and not (ip.is_loopback or ip.is_unspecified):
        embedded = _embedded_reason(ip)
        if embedded is not None:
            return embedded
    label = _category(ip)
    return None if label is None else f"{label} {ip}"


def _touches_metadata(ip: IPAddress) -> bool:
    if ip in _METADATA or any(inner in _METADATA for inner in _transparent_ipv4(ip)):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        return any(inner in _METADATA for _, inner in _tunnelled_ipv4(ip))
    return False


def address_denial(ip: IPAddress, policy: EgressPolicy) -> str | None:
    """The reason ``policy`` refuses ``ip``, or None when it may be reached."""
    if policy.address_allowed(ip):
        return None
    reason = blocked(ip)
    if reason is None or (policy.allow_private and not _touches_metadata(ip)):
        return None
    return reason


def literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes if it is an IP literal in any accepted spelling."""
    text = _normal_host(host).removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


# --- URLs -----------------------------------------------------------------------------------


def _check_scheme(parts: SplitResult, policy: EgressPolicy) -> None:
    allowed = ("https",) if policy.https_only else ("http", "https")
    if parts.scheme.lower() not in allowed:
        raise EgressDenied("scheme must be https" if policy.https_only else "scheme must be http or https")


def _check_authority(parts: SplitResult) -> str:
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EgressDenied("URL must not carry credentials")
    if not parts.hostname:
        raise EgressDenied("URL must have a host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise EgressDenied("port must be between 1 and 65535")
    return parts.hostname


def _check_host(host: str, policy: EgressPolicy) -> None:
    if policy.host_allowed(host):
        return
    ip = literal_ip(host)
    if ip is not None:
        reason = address_denial(ip, policy)
        if reason is not None:
            raise EgressDenied(f"URL host is {reason}")
        return
    name = _normal_host(host)
    if (name == "localhost" or name.endswith(".localhost")) and not policy.allow_private:
        raise EgressDenied(f"host {name} is a loopback name")


def check_url(url: str, policy: EgressPolicy) -> None:
    """Raise ``EgressDenied`` unless ``url`` is syntactically acceptable under ``policy``."""
    if len(url) > MAX_URL_LENGTH:
        raise EgressDenied(f"URL must be at most {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise EgressDenied("URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise EgressDenied(f"URL is malformed: {error}") from None
    _check_scheme(parts, policy)
    _check_host(_check_authority(parts), policy)


# --- Resolution -----------------------------------------------------------------------------


async def resolve_checked(host: str, port: int, policy: EgressPolicy) -> list[str]:
    """Resolve ``host``; refuse if ANY address is blocked. Returns the addresses, in order.

    Resolution errors propagate as ``OSError`` (``socket.gaierror``).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise socket.gaierror(f"no address for {host}")
    if policy.host_allowed(host):
        return addresses
    for address in addresses:
        reason = address_denial(ipaddress.ip_address(address.split("%", 1)[0]), policy)
        if reason is not None:
            raise EgressDenied(f"host {host} resolves to {reason}")
    return addresses


# --- httpx integration ----------------------------------------------------------------------


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that resolves and checks the host, then connects to a checked address."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, self.policy)
                return await self._connect_first(addresses, port, local_address, socket_options)
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from error
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error

    async def _connect_first(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        options = list(socket_options or ())
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, local_address=local_address, socket_options=options
                )
            except httpcore.ConnectError as error:
                last = error
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` whose pool connects through ``GuardedNetworkBackend`` (no proxy)."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        http2: bool = False,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        if limits is None:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits, http2=http2)
        if not isinstance(self._pool, httpcore.AsyncConnectionPool):  # an httpx upgrade moved things
            raise TypeError("unexpected httpx transport internals; the egress guard cannot be installed")
        self.network_backend = network_backend or GuardedNetworkBackend(policy)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=self.network_backend,
        )


def _url_hook(policy: EgressPolicy) -> Callable[[httpx.Request], Awaitable[None]]:
    async def check_request(request: httpx.Request) -> None:
        check_url(str(request.url), policy)

    return check_request


_RESERVED_CLIENT_ARGS = frozenset({"transport", "mounts", "follow_redirects", "trust_env", "proxy", "app"})


def guarded_client(
    policy: EgressPolicy, *, timeout: httpx.Timeout, limits: httpx.Limits | None = None, **kw: Any
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that only reaches what ``policy`` permits.

    No redirects are followed (a 3xx is returned as is), proxy environment variables are
    ignored. ``verify`` and ``http2`` go to the transport; other keywords to ``AsyncClient``.
    """
    clash = _RESERVED_CLIENT_ARGS & kw.keys()
    if clash:
        raise TypeError(f"guarded_client does not accept {sorted(clash)}")
    hooks: dict[str, list[Callable[..., Any]]] = {
        key: list(value) for key, value in (kw.pop("event_hooks", None) or {}).items()
    }
    hooks["request"] = [_url_hook(policy), *hooks.get("request", [])]
    transport = GuardedTransport(
        policy, limits=limits, verify=kw.pop("verify", True), http2=kw.pop("http2", False)
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        event_hooks=hooks,
        **kw,
    )
