"""SSRF guard for every server-side HTTP request to a user-supplied URL.

Three layers, all judging the host *as the HTTP client will connect to it*:

* ``check_url`` is a syntactic check (scheme, credentials, port, length) of a URL whose host
  is first normalised exactly as aiohttp does (``yarl``: IDNA/UTS-46, so ``①②⑦.0.0.1``,
  fullwidth digits and ideographic full stops all spell ``127.0.0.1``), then refused when it is a
  literal address in any spelling ``getaddrinfo`` accepts (``127.1``, ``0x7f.1``,
  ``2130706433``, ``[::ffff:127.0.0.1]`` ...). Use it to reject a URL early, e.g. when a
  webhook is configured; it does not resolve names.
* ``resolve_checked`` resolves a host and refuses if *any* of its addresses is blocked.
* ``check_peer`` judges the address a socket is about to connect to. ``client.guarded_session``
  calls the last two at connection time for every connection (redirect hops included), so
  neither a spelling the syntactic check missed nor a DNS answer that changes between check
  and connect ("DNS rebinding") can slip through.

Denials raise ``EgressDenied`` with a ``reason``; at connection time ``PeerDenied`` (also an
``OSError``, as socket errors are). Reasons about private addresses name the setting that
permits them (``EgressPolicy.setting``).

Policy: an address is blocked when it is not publicly routable (see ``blocked``).
``allow_private`` permits every such address except the cloud metadata endpoints (meant for
tests and trusted single-host setups). ``allow`` lists CIDRs or exact host names that are
permitted whatever they resolve to (metadata included: an explicit entry is deliberate).
Resolution is asyncio-only (it uses the running loop).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from yarl import URL

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


class PeerDenied(EgressDenied, OSError):
    """A connection to a refused address was stopped before it was made (an ``OSError`` too,
    so that HTTP clients treat it as the connection failure it is)."""


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


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
    setting: str = "WAREST_WEBHOOK_ALLOW_PRIVATE"
    """The setting that sets ``allow_private``, named in the reasons of refusals."""

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
    if reason is None:
        return None
    if _touches_metadata(ip):
        return f"{reason}, which {policy.setting} never permits"
    if policy.allow_private:
        return None
    return f"{reason} (private destinations need {policy.setting}=true)"


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


def _check_authority(parts: SplitResult) -> None:
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


@dataclass(frozen=True)
class Destination:
    """Where a URL's request goes, as the HTTP client sees it: ``host`` is normalised the way
    aiohttp normalises it before connecting (IDNA/UTS-46, lower case, IPv6 compressed);
    ``ip`` is the address when the host is a literal in any spelling, else None (a name)."""

    host: str
    port: int
    ip: IPAddress | None


@functools.lru_cache(maxsize=1024)  # deliveries check the same few URLs again and again
def destination(url: str) -> Destination:
    """The host and port the HTTP client connects to for ``url`` (``EgressDenied`` if it
    cannot be parsed, as the client could not either)."""
    try:
        parsed = URL(url)
        host = parsed.raw_host
        port = parsed.port
    except (ValueError, UnicodeError) as error:
        raise EgressDenied(f"URL is malformed: {error}") from None
    if not host:
        raise EgressDenied("URL must have a host")
    return Destination(host, port or (443 if parsed.scheme.lower() == "https" else 80), literal_ip(host))


def _loopback_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _check_host(target: Destination, policy: EgressPolicy) -> None:
    if policy.host_allowed(target.host):
        return
    if target.ip is not None:
        reason = address_denial(target.ip, policy)
        if reason is not None:
            raise EgressDenied(f"URL host is {reason}")
        return
    name = _normal_host(target.host)
    if _loopback_name(name) and not policy.allow_private:
        raise EgressDenied(
            f"host {name} is a loopback name (private destinations need {policy.setting}=true)"
        )


def check_url(url: str, policy: EgressPolicy) -> Destination:
    """Raise ``EgressDenied`` unless ``url`` is syntactically acceptable under ``policy``;
    return where it leads (a name in it still has to be resolved and checked)."""
    if len(url) > MAX_URL_LENGTH:
        raise EgressDenied(f"URL must be at most {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise EgressDenied("URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise EgressDenied(f"URL is malformed: {error}") from None
    _check_scheme(parts, policy)
    _check_authority(parts)
    target = destination(url)
    _check_host(target, policy)
    return target


def check_peer(address: str, policy: EgressPolicy, host: str | None = None) -> None:
    """Raise ``PeerDenied`` unless a socket may connect to ``address`` (an IP address, as
    in a socket address), reached for ``host`` (the URL's host; None when unknown)."""
    if host is not None and policy.host_allowed(host):
        return
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise PeerDenied(f"connection to {address!r}, which is not an IP address") from None
    reason = address_denial(ip, policy)
    if reason is not None:
        raise PeerDenied(f"connection to {reason}")


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
