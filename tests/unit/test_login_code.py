"""The webhook outbox gives a ``PairingCodeIssued`` the code the session shows now only if
that code is the event's own: same phone, stored before the event was recorded (the runtime
stores a code first, then records its event)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warest.infra.db.login_qr import ShownCode

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_event_recorded_after_the_code_gets_it() -> None:
    shown = ShownCode("628111", "ABCD-EFGH", T0)
    assert shown.of("628111", T0 + timedelta(milliseconds=2)) == "ABCD-EFGH"
    assert shown.of("628111", T0) == "ABCD-EFGH"


def test_an_event_older_than_the_code_or_for_another_phone_gets_none() -> None:
    """A newer code replaced the event's own (its code is useless by now): no code rather
    than the wrong one; nor a code for another phone."""
    shown = ShownCode("628111", "ABCD-EFGH", T0)
    assert shown.of("628111", T0 - timedelta(microseconds=1)) is None
    assert shown.of("628222", T0 + timedelta(seconds=1)) is None
