"""Every way a URL host can spell one address, for the egress guard's tests.

An HTTP client turns each of these into the address itself before connecting: IDNA/UTS-46
maps Unicode digits (circled, fullwidth, mathematical) and the ideographic full stops to
ASCII, and ``inet_aton`` reads the legacy IPv4 forms (one number, octal, hex, short forms).
"""

# ruff: noqa: RUF001 - the point is look-alike digits, dots and letters

from __future__ import annotations

import ipaddress

_CIRCLED = dict(zip("0123456789", "⓪①②③④⑤⑥⑦⑧⑨", strict=True))
_FULLWIDTH = dict(zip("0123456789", "０１２３４５６７８９", strict=True))
_MATH_BOLD = dict(zip("0123456789", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", strict=True))
DOTS = ("\u3002", "\uff0e", "\uff61")  # ideographic, fullwidth and halfwidth ideographic full stops


def _digits(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in text)


def ipv4_spellings(address: str) -> list[str]:
    """URL hosts (brackets included for IPv6) that all reach the IPv4 ``address``."""
    ip = ipaddress.IPv4Address(address)
    a, b, c, d = ip.packed
    value = int(ip)
    dotted = str(ip)
    hosts = [
        dotted,
        f"{dotted}.",
        _digits(dotted, _CIRCLED),
        _digits(dotted, _FULLWIDTH),
        _digits(dotted, _MATH_BOLD),
        *(dotted.replace(".", dot) for dot in DOTS),
        _digits(dotted, _FULLWIDTH).replace(".", "\uff0e"),
        str(value),
        _digits(str(value), _FULLWIDTH),
        f"0{value:o}",
        f"0x{value:x}",
        f"0X{value:X}",
        ".".join(f"0{octet:o}" for octet in (a, b, c, d)),
        ".".join(f"0x{octet:x}" for octet in (a, b, c, d)),
        f"{a}.{b}.{(c << 8) | d}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"0x{a:x}.{(b << 16) | (c << 8) | d}",
        _digits(f"0x{a:x}.{(b << 16) | (c << 8) | d}", _FULLWIDTH).replace("x", "ｘ"),
        f"[::ffff:{dotted}]",
        f"[::ffff:{value >> 16:x}:{value & 0xFFFF:x}]",
        f"[0:0:0:0:0:ffff:{dotted}]",
        f"[64:ff9b::{dotted}]",
        f"[2002:{value >> 16:x}:{value & 0xFFFF:x}::1]",
    ]
    return list(dict.fromkeys(hosts))


def ipv6_spellings(address: str) -> list[str]:
    """URL hosts that all reach the IPv6 ``address``."""
    ip = ipaddress.IPv6Address(address)
    return list(dict.fromkeys([f"[{ip.compressed}]", f"[{ip.exploded}]", f"[{ip.exploded.upper()}]"]))


LOOPBACK_V4 = ("127.0.0.1", "127.255.0.9")
PRIVATE_V4 = (
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.1.1",
    "0.0.0.0",
)
METADATA_V4 = ("169.254.169.254", "100.100.100.200")
PRIVATE_V6 = ("::1", "fc00::1", "fd12:3456::1", "fe80::1", "::")
METADATA_V6 = ("fd00:ec2::254",)


def private_hosts() -> list[str]:
    """Hosts of loopback and private destinations (allowed with WAREST_WEBHOOK_ALLOW_PRIVATE)."""
    hosts = [h for address in (*LOOPBACK_V4, *PRIVATE_V4) for h in ipv4_spellings(address)]
    hosts += [h for address in PRIVATE_V6 for h in ipv6_spellings(address)]
    return [*hosts, "localhost", "LOCALHOST.", "ｌｏｃａｌｈｏｓｔ", "api.localhost"]


def metadata_hosts() -> list[str]:
    """Hosts of the cloud metadata endpoints (never allowed)."""
    hosts = [h for address in METADATA_V4 for h in ipv4_spellings(address)]
    return hosts + [h for address in METADATA_V6 for h in ipv6_spellings(address)]


def loopback_hosts() -> list[str]:
    """Hosts that reach 127.0.0.1 itself (where a test receiver listens)."""
    return [*ipv4_spellings("127.0.0.1"), "localhost", "LOCALHOST.", "ｌｏｃａｌｈｏｓｔ"]
