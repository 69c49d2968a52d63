"""Which address a request comes from: X-Forwarded-For only via trusted proxies."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar.connection import ASGIConnection

from warest.api.auth import client_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def conn(peer: str, forwarded: str | None) -> ASGIConnection[Any, Any, Any, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope: Any = {
        "type": "http",
        "client": (peer, 1234),
        "headers": headers,
        "path": "/",
        "query_string": b"",
    }
    return ASGIConnection(scope)


def test_untrusted_peer_header_is_ignored() -> None:
    assert client_address(conn("203.0.113.5", "1.2.3.4"), TRUSTED) == "203.0.113.5"
    assert client_address(conn("203.0.113.5", "1.2.3.4"), ()) == "203.0.113.5"


def test_trusted_proxy_gives_the_first_untrusted_hop_from_the_right() -> None:
    assert client_address(conn("10.0.0.2", "1.2.3.4"), TRUSTED) == "1.2.3.4"
    # A client-supplied spoof on the left is skipped: the proxy appended the real address.
    assert client_address(conn("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.9"), TRUSTED) == "1.2.3.4"
    assert client_address(conn("10.0.0.2", "garbage"), TRUSTED) == "10.0.0.2"
    assert client_address(conn("10.0.0.2", None), TRUSTED) == "10.0.0.2"
