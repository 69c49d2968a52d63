"""The egress (SSRF) guard: URL checks, address classification, and the guarded httpx client.

No internet: every request goes to a loopback server started by the test, and names other than
``localhost`` are answered by a fake resolver patched onto the running loop.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from warest.infra.webhooks.egress import (
    EgressDenied,
    EgressPolicy,
    GuardedNetworkBackend,
    GuardedTransport,
    blocked,
    check_url,
    guarded_client,
    literal_ip,
    resolve_checked,
)

STRICT = EgressPolicy()
PRIVATE_OK = EgressPolicy(allow_private=True)
TIMEOUT = httpx.Timeout(5.0)


# --- a minimal loopback HTTP server ----------------------------------------------------------


class Server:
    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.status, self.location = status, location
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            extra = f"Location: {self.location}\r\n" if self.location else ""
            head = f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\nConnection: close\r\n{extra}\r\n"
            writer.write(head.encode() + b"ok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def url(self, path: str = "/", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


@asynccontextmanager
async def serve(
    status: int = 200, location: str | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    server = Server(status, location)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


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
    assert caught.value.reason == "host mixed.example resolves to a private address 10.1.2.3"
    assert await resolve_checked("public.example", 443, STRICT) == ["93.184.216.34", "2606:2800:220:1::1"]
    assert await resolve_checked("hooks.internal", 443, EgressPolicy(allow=("hooks.internal",))) == [
        "10.0.0.5"
    ]
    with pytest.raises(EgressDenied):
        await resolve_checked("hooks.internal", 443, STRICT)


# --- the guarded httpx client -----------------------------------------------------------------


async def test_client_reaches_loopback_only_when_private_is_allowed() -> None:
    async with serve() as server:
        async with guarded_client(PRIVATE_OK, timeout=TIMEOUT) as client:
            response = await client.post(server.url("/hook"), content=b"{}")
        assert response.status_code == 200 and response.content == b"ok"
        assert server.connections == 1 and server.requests[0].startswith(b"POST /hook HTTP/1.1")

    async with serve() as server:
        async with guarded_client(STRICT, timeout=TIMEOUT) as client:
            with pytest.raises(EgressDenied) as caught:
                await client.post(server.url("/hook"), content=b"{}")
        assert not isinstance(caught.value, httpx.HTTPError)
        assert "a loopback address 127.0.0.1" in caught.value.reason
        for host in ("localhost", "127.1", "[::ffff:127.0.0.1]"):
            async with guarded_client(STRICT, timeout=TIMEOUT) as client:
                with pytest.raises(EgressDenied):
                    await client.get(server.url(host=host))
        assert server.connections == 0


async def test_backend_checks_the_connected_address_even_without_the_url_hook(
    fake_dns: Callable[[dict[str, list[str]]], None],
) -> None:
    fake_dns({"rebind.example": ["127.0.0.1"]})
    async with serve() as server:
        check_url(server.url(host="rebind.example"), STRICT)  # syntactically fine: a name
        async with guarded_client(STRICT, timeout=TIMEOUT) as client:
            with pytest.raises(EgressDenied, match=r"host rebind\.example resolves to a loopback"):
                await client.get(server.url(host="rebind.example"))
        async with httpx.AsyncClient(transport=GuardedTransport(STRICT)) as bare:
            with pytest.raises(EgressDenied, match=r"resolves to a loopback address 127\.0\.0\.1"):
                await bare.get(server.url())
        assert server.connections == 0
        async with guarded_client(PRIVATE_OK, timeout=TIMEOUT) as client:
            assert (await client.get(server.url(host="rebind.example"))).status_code == 200
        assert server.connections == 1
        assert b"host: rebind.example:" in server.requests[0].lower()


async def test_redirects_are_not_followed() -> None:
    async with serve(status=302) as server:
        server.location = server.url("/elsewhere")
        async with guarded_client(PRIVATE_OK, timeout=TIMEOUT) as client:
            response = await client.post(server.url("/hook"), content=b"{}")
        assert response.status_code == 302 and response.headers["location"] == server.location
        assert server.connections == 1 and response.next_request is not None
        assert client.follow_redirects is False


async def test_proxy_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://203.0.113.1:3128")
    monkeypatch.setenv("NO_PROXY", "")
    async with serve() as server:
        async with guarded_client(PRIVATE_OK, timeout=httpx.Timeout(2.0)) as client:
            assert (await client.get(server.url())).status_code == 200
        assert server.connections == 1


async def test_dns_failure_is_an_httpx_connect_error(
    fake_dns: Callable[[dict[str, list[str]]], None],
) -> None:
    fake_dns({"nowhere.example": []})
    async with guarded_client(STRICT, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.example"):
            await client.get("http://nowhere.example/")


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(EgressDenied, match="unix sockets"):
        await GuardedNetworkBackend(PRIVATE_OK).connect_unix_socket("/var/run/docker.sock")


def test_guarded_client_refuses_overrides() -> None:
    for key in ("follow_redirects", "trust_env", "transport", "proxy", "mounts"):
        with pytest.raises(TypeError, match=key):
            guarded_client(STRICT, timeout=TIMEOUT, **{key: None})


async def test_caller_request_hooks_run_after_the_url_check() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with serve() as server:
        async with guarded_client(PRIVATE_OK, timeout=TIMEOUT, event_hooks={"request": [hook]}) as client:
            await client.get(server.url())
        async with guarded_client(STRICT, timeout=TIMEOUT, event_hooks={"request": [hook]}) as client:
            with pytest.raises(EgressDenied):
                await client.get(server.url("/denied"))
    assert seen == [server.url()]


# --- TLS: SNI and certificate checks use the host name, the socket uses the checked IP ---------


def _self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    # cryptography is present through optional extras only: skip rather than fail without it
    x509 = pytest.importorskip("cryptography.x509")
    hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    NameOID = pytest.importorskip("cryptography.x509.oid").NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert_pem


class RecordingBackend(httpcore.AnyIOBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


async def test_tls_uses_host_name_for_sni_and_the_checked_ip_for_the_socket(tmp_path: Path) -> None:
    cert_path, key_path, cert_pem = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    client_tls = ssl.create_default_context(cadata=cert_pem.decode())

    policy = EgressPolicy(allow=("localhost",))
    inner = RecordingBackend()
    transport = GuardedTransport(
        policy, verify=client_tls, network_backend=GuardedNetworkBackend(policy, inner=inner)
    )
    async with (
        serve(tls=server_tls) as server,
        httpx.AsyncClient(transport=transport, trust_env=False) as client,
    ):
        response = await client.get(server.url(host="localhost", scheme="https"))
    assert response.status_code == 200
    assert sni == ["localhost"]
    assert inner.hosts and all(ipaddress.ip_address(h).is_loopback for h in inner.hosts)
