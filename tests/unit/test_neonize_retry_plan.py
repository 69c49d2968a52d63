"""The neonize reconnect schedule: back-off up to its cap, then slower once suspended."""

from __future__ import annotations

from warest.infra.engines.neonize.lifecycle import Backoff, RetryPlan


def test_retries_slow_down_once_the_outage_is_suspended() -> None:
    plan = RetryPlan(Backoff(1.0, 30.0), suspend_after_s=300.0, suspended_retry_s=120.0)
    assert [plan.delay(n, outage_s=10.0) for n in (1, 2, 3, 6, 7, 20)] == [1.0, 2.0, 4.0, 30.0, 30.0, 30.0]
    assert plan.delay(25, outage_s=300.0) == 120.0
    # before: 2 attempts a minute for ever (each a Session.ConnectionLost); now one per 2 minutes
    assert plan.delay(3, outage_s=301.0) == 120.0
