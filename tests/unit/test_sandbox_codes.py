"""Identifiers of the simulated network."""

from __future__ import annotations

from warest.infra.engines.sandbox import codes
from warest.infra.engines.sandbox.network import SandboxNetwork


def test_external_message_ids_do_not_repeat_across_restarts() -> None:
    first, second = SandboxNetwork(store=None), SandboxNetwork(store=None)  # type: ignore[arg-type]
    ids_first = {first.next_message_id("628111") for _ in range(100)}
    ids_second = {second.next_message_id("628111") for _ in range(100)}
    assert len(ids_first) == 100 and not ids_first & ids_second


def test_pairing_codes_and_lids_are_stable_and_well_formed() -> None:
    code = codes.pairing_code("REG/main", "628111", 1)
    assert code == codes.pairing_code("REG/main", "628111", 1)
    assert len(code) == 9 and code[4] == "-" and code.replace("-", "").isalnum()
    assert codes.pairing_code("REG/main", "628111", 2) != code
    lid = codes.lid_for("628111")
    assert lid == codes.lid_for("628111") and len(lid) == 15 and lid.isdigit()
    assert codes.qr_string("REG/main", 1, 1).startswith("2@") and codes.qr_string(
        "REG/main", 1, 2
    ) != codes.qr_string("REG/main", 1, 1)
