"""The egress (SSRF) guard: URL checks, address classification and checked resolution (the
aiohttp sender that uses it is tested in test_webhook_sender.py).

No internet: names other than ``localhost`` are answered by a fake resolver patched onto the
running loop.
"""

# ruff: noqa: RUF001 - the point is look-alike digits, dots and letters

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.egress_spellings import ipv4_spellings, metadata_hosts, private_hosts
from warest.infra.webhooks.egress import (
    Destination,
    EgressDenied,
    EgressPolicy,
    PeerDenied,
    blocked,
    check_peer,
    check_url,
    destination,
    literal_ip,
    resolve_checked,
)

STRICT = EgressPolicy()
PRIVATE_OK = EgressPolicy(allow_private=True)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], None]:
    """Answer the given names from a table; other names go to the real resolver."""

    def install(table: dict[str, list[str]]) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> list[Any]:
            if host not in table:
                return await real(host, port, **kwargs)
            if not table[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]
            ]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)

    return install


# --- literal addresses and classification ----------------------------------------------------

BLOCKED_URLS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://0x7f.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://127.0.0.1.:8080/",
    "http://127.0.0.1../",
    "http://localhost../",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://0.0.0.0/",
    "http://0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fd00:ec2::254]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[::]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a01:203]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
]

PUBLIC_URLS = [
    "http://8.8.8.8/",
    "http://134744072/",
    "https://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::]/",
    "https://example.com:8443/hook?x=1",
    "http://0xcafe.example/",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_check_url_blocks_private_literals_in_every_spelling(url: str) -> None:
    with pytest.raises(EgressDenied):
        check_url(url, STRICT)


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_check_url_accepts_public_destinations(url: str) -> None:
    check_url(url, STRICT)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("example.com", None),
        ("deadbeef.cafe", None),
        ("1.2.3.4 x", None),
    ],
)
def test_literal_ip_normalises_legacy_forms(host: str, expected: str | None) -> None:
    ip = literal_ip(host)
    assert (None if ip is None else str(ip)) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "a private address 10.1.2.3"),
        ("127.0.0.1", "a loopback address 127.0.0.1"),
        ("169.254.169.254", "the cloud metadata address 169.254.169.254"),
        ("100.100.100.200", "the cloud metadata address"),
        ("fd00:ec2::254", "the cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("224.0.0.1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "a 'this network' address"),
        ("240.0.0.1", "a reserved address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address ::1"),
        ("fc00::1", "a unique-local address"),
        ("fec0::1", "a site-local address"),
        ("fe80::1", "a link-local address"),
        ("::ffff:10.0.0.1", "maps to a private address 10.0.0.1"),
        ("64:ff9b::7f00:1", "maps to a loopback address 127.0.0.1"),
        ("2002:a00:1::", "a 6to4 address 2002:a00:1:: embedding a private address 10.0.0.1"),
        ("::7f00:1", "an IPv4-compatible IPv6 address ::7f00:1 embedding a loopback"),
        ("2001::1", "Teredo"),
        ("64:ff9b:1::1", "a local-use NAT64 address"),
        ("2001:db8::1", "a private address"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_blocked_reasons(address: str, reason: str | None) -> None:
    result = blocked(ipaddress.ip_address(address))
    if reason is None:
        assert result is None
    else:
        assert result is not None and reason in result


# --- syntactic checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("gopher://example.com/", "scheme must be http or https"),
        ("example.com/hook", "scheme must be http or https"),
        ("http://user:pw@example.com/", "URL must not carry credentials"),
        ("http://user@example.com/", "URL must not carry credentials"),
        ("http://@example.com/", "URL must not carry credentials"),
        ("http:///hook", "URL must have a host"),
        ("http://:80/", "URL must have a host"),
        ("http://example.com:0/", "port must be between 1 and 65535"),
        ("http://example.com:65536/", "port must be between 1 and 65535"),
        ("http://example.com:http/", "port must be between 1 and 65535"),
        ("http://exa mple.com/", "whitespace or control characters"),
        ("http://example.com/\r\nX-Injected: 1", "whitespace or control characters"),
        ("http://example.com/" + "a" * 2030, "at most 2048 characters"),
        ("http://10.1.2.3/", "URL host is a private address 10.1.2.3"),
        ("http://localhost/", "host localhost is a loopback name"),
    ],
)
def test_check_url_reasons(url: str, reason: str) -> None:
    with pytest.raises(EgressDenied) as caught:
        check_url(url, STRICT)
    assert reason in caught.value.reason and reason in str(caught.value)


def test_check_url_limits() -> None:
    check_url("http://example.com:65535/", STRICT)
    check_url("HTTPS://Example.COM/", STRICT)
    url = "http://example.com/" + "a" * (2048 - len("http://example.com/"))
    check_url(url, STRICT)
    with pytest.raises(EgressDenied):
        check_url(url + "a", STRICT)


def test_https_only() -> None:
    policy = EgressPolicy(https_only=True)
    check_url("https://example.com/", policy)
    with pytest.raises(EgressDenied, match="scheme must be https"):
        check_url("http://example.com/", policy)


# --- policy -----------------------------------------------------------------------------------


def test_allow_private_permits_private_but_never_metadata() -> None:
    for url in ("http://127.0.0.1:8080/", "http://[::1]/", "http://10.1.2.3/", "http://localhost/"):
        check_url(url, PRIVATE_OK)
    for url in ("http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/"):
        with pytest.raises(EgressDenied, match="metadata"):
            check_url(url, PRIVATE_OK)


def test_allow_list_cidr() -> None:
    policy = EgressPolicy(allow=("10.0.0.0/8", "::1/128", "169.254.169.254"))
    for url in ("http://10.1.2.3/", "http://[::1]/", "http://[::ffff:10.9.9.9]/", "http://169.254.169.254/"):
        check_url(url, policy)
    for url in ("http://192.168.1.1/", "http://127.0.0.1/"):
        with pytest.raises(EgressDenied):
            check_url(url, policy)


def test_allow_list_host_name_is_exact_and_case_insensitive() -> None:
    policy = EgressPolicy(allow=("Hooks.Internal", "localhost"))
    check_url("http://hooks.internal/", policy)
    check_url("http://HOOKS.INTERNAL./", policy)
    check_url("http://localhost:8080/", policy)
    with pytest.raises(EgressDenied):
        check_url("http://api.localhost/", policy)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "1.2.3.4.5", "", "a/b"])
def test_malformed_allow_entry_is_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
        EgressPolicy(allow=(entry,))


# --- resolution -------------------------------------------------------------------------------


async def test_resolve_checked_localhost() -> None:
    with pytest.raises(EgressDenied, match=r"host localhost resolves to a loopback address 127\.0\.0\.1"):
        await resolve_checked("localhost", 80, STRICT)
    assert "127.0.0.1" in await resolve_checked("localhost", 80, PRIVATE_OK)
    assert "127.0.0.1" in await resolve_checked("localhost", 80, EgressPolicy(allow=("127.0.0.0/8",)))


async def test_resolve_checked_refuses_if_any_address_is_blocked(
    fake_dns: Callable[[dict[str, list[str]]], None],
) -> None:
    fake_dns(
        {
            "mixed.example": ["93.184.216.34", "10.1.2.3"],
            "public.example": ["93.184.216.34", "2606:2800:220:1::1"],
            "hooks.internal": ["10.0.0.5"],
        }
    )
    with pytest.raises(EgressDenied) as caught:
        await resolve_checked("mixed.example", 443, STRICT)
    assert caught.value.reason == (
        "host mixed.example resolves to a private address 10.1.2.3"
        " (private destinations need WAREST_WEBHOOK_ALLOW_PRIVATE=true)"
    )
    assert await resolve_checked("public.example", 443, STRICT) == ["93.184.216.34", "2606:2800:220:1::1"]
    assert await resolve_checked("hooks.internal", 443, EgressPolicy(allow=("hooks.internal",))) == [
        "10.0.0.5"
    ]
    with pytest.raises(EgressDenied):
        await resolve_checked("hooks.internal", 443, STRICT)


# --- every spelling of a refused address (the host as the HTTP client normalises it) --------


@pytest.mark.parametrize("host", private_hosts())
def test_private_destinations_are_refused_in_every_spelling_unless_allowed(host: str) -> None:
    url = f"http://{host}:8080/x"
    with pytest.raises(EgressDenied) as caught:
        check_url(url, STRICT)
    assert "WAREST_WEBHOOK_ALLOW_PRIVATE=true" in caught.value.reason, caught.value.reason
    check_url(url, PRIVATE_OK)


@pytest.mark.parametrize("host", metadata_hosts())
def test_metadata_is_refused_in_every_spelling_even_when_private_is_allowed(host: str) -> None:
    for policy in (STRICT, PRIVATE_OK):
        with pytest.raises(EgressDenied) as caught:
            check_url(f"http://{host}/latest/meta-data", policy)
        assert "metadata" in caught.value.reason and "never permits" in caught.value.reason
        assert "WAREST_WEBHOOK_ALLOW_PRIVATE" in caught.value.reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://①②⑦.0.0.1:8080/x", Destination("127.0.0.1", 8080, ipaddress.ip_address("127.0.0.1"))),
        ("http://１２７.0.0.1/x", Destination("127.0.0.1", 80, ipaddress.ip_address("127.0.0.1"))),
        ("https://127。0。0。1/x", Destination("127.0.0.1", 443, ipaddress.ip_address("127.0.0.1"))),
        ("http://０ｘ７ｆ.1/", Destination("0x7f.1", 80, ipaddress.ip_address("127.0.0.1"))),
        ("http://[::ffff:7f00:1]/", Destination("::ffff:7f00:1", 80, ipaddress.ip_address("::ffff:7f00:1"))),
        ("http://ｌｏｃａｌｈｏｓｔ./", Destination("localhost.", 80, None)),
        ("http://Bücher.example/", Destination("xn--bcher-kva.example", 80, None)),
    ],
)
def test_destination_is_the_host_the_client_connects_to(url: str, expected: Destination) -> None:
    assert destination(url) == expected


def test_spellings_are_real() -> None:
    """Each spelling the tests use does denote its address once normalised (else the tests
    above would prove nothing)."""
    for host in ipv4_spellings("10.1.2.3"):
        target = destination(f"http://{host}/")
        assert target.ip is not None, host
        carried = {str(target.ip), *(str(inner) for _, inner in _embedded(target.ip))}
        assert "10.1.2.3" in carried, (host, target)


def _embedded(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [("mapped", ip.ipv4_mapped)] if ip.ipv4_mapped else []
    found += [("6to4", ip.sixtofour)] if ip.sixtofour else []
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        found.append(("nat64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return found


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "169.254.169.254", "fe80::1%2", "0.0.0.0"]
)
def test_check_peer_refuses_the_address_a_socket_would_reach(address: str) -> None:
    with pytest.raises(PeerDenied) as caught:
        check_peer(address, STRICT)
    assert isinstance(caught.value, OSError) and "connection to" in caught.value.reason


def test_check_peer_honours_the_policy() -> None:
    check_peer("127.0.0.1", PRIVATE_OK)
    check_peer("93.184.216.34", STRICT)
    check_peer("10.0.0.5", EgressPolicy(allow=("hooks.internal",)), "HOOKS.internal.")
    check_peer("10.0.0.5", EgressPolicy(allow=("10.0.0.0/8",)), "anything.example")
    with pytest.raises(PeerDenied):
        check_peer("10.0.0.5", EgressPolicy(allow=("hooks.internal",)), "other.example")
    with pytest.raises(PeerDenied, match="metadata"):
        check_peer("169.254.169.254", PRIVATE_OK)


@pytest.mark.parametrize("host", ["[::ｆｆｆｆ:127.0.0.1]", "[::ffff:１２７.0.0.1]"])
def test_bracketed_hosts_with_unicode_are_refused_as_malformed(host: str) -> None:
    for policy in (STRICT, PRIVATE_OK):
        with pytest.raises(EgressDenied, match="URL is malformed"):
            check_url(f"http://{host}/", policy)
