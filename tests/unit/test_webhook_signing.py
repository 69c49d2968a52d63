"""Webhook signatures: golden vectors of both schemes, verification, secrets."""

from __future__ import annotations

import base64
import time

import pytest

from warest.app.webhook_signing import (
    SignatureInvalid,
    new_webhook_secret,
    parse_sha2,
    standard_key,
    standard_signature,
    standard_signatures,
    validate_secret,
    verify_standard,
    verify_warest,
    warest_algorithm,
    warest_signature,
)

SESSION = '"session":{"id":"main","label":"main","registry":"admin","username":"admin"}'
MESSAGE_BODY = (
    '{"event":"message_received","data":{"id":"main","tags":"text","text":"hi","sessionId":"main"},'
    '"ts":1733000000000,' + SESSION + "}"
).encode()
PREFLIGHT_BODY = ('{"event":"preflight","data":{"ping":true},"ts":1733000000000,' + SESSION + "}").encode()

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _headers(signature: str, ts: int = SW_TS, msg_id: str = SW_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


# --- WAREST ---------------------------------------------------------------------------------


def test_warest_sha256_golden_vector() -> None:
    assert warest_signature(MESSAGE_BODY, "s3cretKey", "admin") == (
        "HMAC-SHA256=4c5492c1ce5d9cbf75a8b729d80e13bfb64f40bb70fc08f0683adfe468457125"
    )


def test_warest_sha512_golden_vector() -> None:
    assert warest_signature(MESSAGE_BODY, "s3cretKey", "admin", "sha512") == (
        "HMAC-SHA512=b22d7a8e0858dcf45d54456445a7fecb6fa225392ad42a795a11c8921e007ce5"
        "0675d2e54850e83d534868775b86135d28ddec29b8ebed82c8292afb3cb5644b"
    )


def test_warest_preflight_golden_vector() -> None:
    assert warest_signature(PREFLIGHT_BODY, "s3cretKey", "admin") == (
        "HMAC-SHA256=1f54900a810dad1110d7ef9a6b85a8b7f0fedb0028fa96b51535292a2cd1939a"
    )


def test_warest_key_is_secret_plus_username() -> None:
    assert warest_signature(b"x", "s3cretKey", "admin") == warest_signature(b"x", "s3cretKeyadmin", None)


def test_warest_username_none_equals_empty() -> None:
    assert warest_signature(b"x", "s", None) == warest_signature(b"x", "s", "")


@pytest.mark.parametrize("sha2", ["224", "256", "384", "512"])
def test_warest_token_reflects_algorithm_and_round_trips(sha2: str) -> None:
    value = warest_signature(MESSAGE_BODY, "s3cretKey", "admin", sha2)
    assert value.startswith(f"HMAC-SHA{sha2}=") and warest_algorithm(sha2) == f"HMAC-SHA{sha2}"
    digest = value.partition("=")[2]
    assert digest == digest.lower() and len(digest) == int(sha2) // 4
    verify_warest(MESSAGE_BODY, value, "s3cretKey", "admin", sha2)


def test_verify_warest_rejects_tampering_wrong_key_and_wrong_algorithm() -> None:
    value = warest_signature(MESSAGE_BODY, "s3cretKey", "admin")
    verify_warest(MESSAGE_BODY, value.upper().replace("HMAC-SHA256", "hmac-sha256"), "s3cretKey", "admin")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_warest(MESSAGE_BODY + b" ", value, "s3cretKey", "admin")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_warest(MESSAGE_BODY, value, "s3cretKey", None)
    with pytest.raises(SignatureInvalid, match="HMAC-SHA512"):
        verify_warest(MESSAGE_BODY, value, "s3cretKey", "admin", "512")
    for bad in (None, "", "4c5492c1", "HMAC-SHA256"):
        with pytest.raises(SignatureInvalid):
            verify_warest(MESSAGE_BODY, bad, "s3cretKey", "admin")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256", "256"),
        ("224", "224"),
        ("sha256", "256"),
        ("SHA256", "256"),
        ("SHA-256", "256"),
        ("sha-512", "512"),
        ("SHA_384", "384"),
        (" sha224 ", "224"),
        ("HMAC-SHA512", "512"),
    ],
)
def test_parse_sha2_accepts_spellings(value: str, expected: str) -> None:
    assert parse_sha2(value) == expected


@pytest.mark.parametrize("value", ["", "1", "sha1", "md5", "sha3-256", "SHA-257", "2566", "sha 2 56x"])
def test_parse_sha2_rejects_unknown(value: str) -> None:
    with pytest.raises(ValueError, match="unsupported SHA-2 variant"):
        parse_sha2(value)
    with pytest.raises(ValueError):
        warest_signature(b"x", "s", None, value)


# --- Standard Webhooks ----------------------------------------------------------------------


def test_standard_golden_vector() -> None:
    assert standard_signature(SW_ID, SW_TS, SW_BODY, SW_SECRET) == SW_SIGNATURE
    verify_standard(SW_BODY, _headers(SW_SIGNATURE), [SW_SECRET], now=SW_TS)


def test_standard_whsec_key_is_base64_and_other_secrets_are_raw_utf8() -> None:
    assert standard_key(SW_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    raw = "a-passphrase-that-is-long-enough"
    assert standard_key(raw) == raw.encode()
    wrapped = "whsec_" + base64.b64encode(raw.encode()).decode()
    assert standard_signature(SW_ID, SW_TS, SW_BODY, raw) == standard_signature(
        SW_ID, SW_TS, SW_BODY, wrapped
    )
    with pytest.raises(ValueError, match="base64"):
        standard_key("whsec_not*base64!")


def test_standard_round_trip_with_current_time() -> None:
    secret = new_webhook_secret()
    ts = int(time.time())
    headers = _headers(standard_signatures("msg_1", ts, b"{}", [secret]), ts, "msg_1")
    verify_standard(b"{}", headers, [secret])


def test_standard_headers_are_case_insensitive() -> None:
    headers = {k.title(): v for k, v in _headers(SW_SIGNATURE).items()}
    verify_standard(SW_BODY, headers, [SW_SECRET], now=SW_TS)


def test_standard_tampered_body_or_id_fails() -> None:
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify_standard(SW_BODY + b" ", _headers(SW_SIGNATURE), [SW_SECRET], now=SW_TS)
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify_standard(SW_BODY, _headers(SW_SIGNATURE, msg_id="msg_other"), [SW_SECRET], now=SW_TS)


def test_standard_wrong_secret_fails() -> None:
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify_standard(SW_BODY, _headers(SW_SIGNATURE), [OTHER_SECRET], now=SW_TS)


def test_standard_timestamp_outside_tolerance_fails() -> None:
    verify_standard(SW_BODY, _headers(SW_SIGNATURE), [SW_SECRET], now=SW_TS + 300)
    verify_standard(SW_BODY, _headers(SW_SIGNATURE), [SW_SECRET], now=SW_TS - 300)
    for now in (SW_TS + 301, SW_TS - 301):
        with pytest.raises(SignatureInvalid, match="tolerance"):
            verify_standard(SW_BODY, _headers(SW_SIGNATURE), [SW_SECRET], now=now)
    verify_standard(SW_BODY, _headers(SW_SIGNATURE), [SW_SECRET], now=SW_TS + 3600, tolerance_s=3600)


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "1.5", "\uff11\uff12\uff13"])
def test_standard_bad_timestamp_fails(timestamp: str) -> None:
    headers = _headers(SW_SIGNATURE) | {"webhook-timestamp": timestamp}
    with pytest.raises(SignatureInvalid):
        verify_standard(SW_BODY, headers, [SW_SECRET], now=SW_TS)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header_fails(missing: str) -> None:
    headers = _headers(SW_SIGNATURE)
    del headers[missing]
    with pytest.raises(SignatureInvalid, match="missing"):
        verify_standard(SW_BODY, headers, [SW_SECRET], now=SW_TS)


def test_standard_rotation_signs_with_both_and_verifies_with_either() -> None:
    header = standard_signatures(SW_ID, SW_TS, SW_BODY, [OTHER_SECRET, SW_SECRET])
    assert header == f"{standard_signature(SW_ID, SW_TS, SW_BODY, OTHER_SECRET)} {SW_SIGNATURE}"
    for secrets in ([SW_SECRET], [OTHER_SECRET], [OTHER_SECRET, SW_SECRET]):
        verify_standard(SW_BODY, _headers(header), secrets, now=SW_TS)
    # a receiver holding two secrets accepts a single signature made with either
    verify_standard(SW_BODY, _headers(SW_SIGNATURE), [OTHER_SECRET, SW_SECRET], now=SW_TS)
    with pytest.raises(ValueError):
        standard_signatures(SW_ID, SW_TS, SW_BODY, [])


def test_standard_unknown_versions_are_ignored() -> None:
    header = f"v1a,abcdef v2,{SW_SIGNATURE[3:]} {SW_SIGNATURE}"
    verify_standard(SW_BODY, _headers(header), [SW_SECRET], now=SW_TS)
    only_unknown = f"v1a,abcdef v2,{SW_SIGNATURE[3:]} garbage"
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify_standard(SW_BODY, _headers(only_unknown), [SW_SECRET], now=SW_TS)


# --- Secrets --------------------------------------------------------------------------------


def test_new_webhook_secret_is_whsec_with_32_random_bytes() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first.startswith("whsec_") and first != second
    assert len(standard_key(first)) == 32
    validate_secret(first)


@pytest.mark.parametrize(
    "secret",
    [
        SW_SECRET,  # 24 bytes
        "whsec_" + base64.b64encode(b"x" * 64).decode(),
        "x" * 24,
        "correct horse battery staple",
        "s" * 512,
    ],
)
def test_validate_secret_accepts(secret: str) -> None:
    validate_secret(secret)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("", "at least 24"),
        ("supersecret", "at least 24"),
        ("x" * 23, "at least 24"),
        ("s" * 513, "at most 512"),
        (" " + "x" * 30, "whitespace"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24-64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24-64 bytes"),
        ("whsec_" + "!" * 40, "base64"),
    ],
)
def test_validate_secret_rejects_with_reason(secret: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_secret(secret)
