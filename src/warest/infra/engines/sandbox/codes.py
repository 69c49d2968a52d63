"""Deterministic identifiers of the simulated network (QR strings, pairing codes, LIDs, ids)."""

from __future__ import annotations

import base64
import hashlib

PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def qr_string(session_key: str, start: int, attempt: int) -> str:
    """Shaped like WhatsApp's ``2@<ref>,<noise key>,<identity key>,<adv secret>``."""
    parts = [base64.b64encode(_digest(session_key, start, attempt, i)).decode() for i in range(4)]
    return "2@" + parts[0][:32] + "," + ",".join(parts[1:])


def pairing_code(session_key: str, phone: str, start: int) -> str:
    digest = _digest("pair", session_key, phone, start)
    chars = [PAIR_ALPHABET[b % len(PAIR_ALPHABET)] for b in digest[:8]]
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def lid_for(phone: str) -> str:
    """A stable LID for a phone number (15 digits, like WhatsApp's)."""
    number = int.from_bytes(_digest("lid", phone)[:8], "big") % 10**14
    return f"1{number:014d}"


def inbound_id(sender: str, counter: object) -> str:
    """A phone-style message id for messages sent by external accounts."""
    return "BAE5" + _digest("in", sender, counter).hex()[:12].upper()
