"""When a projection runner counts as busy (and starts spacing its batches): the rate is
measured on a fake clock, so the test does not depend on the machine's speed."""

from __future__ import annotations

import pytest

from warest.infra import projection_runner
from warest.infra.projection_runner import BUSY_EVENTS_PER_S, _Load


def test_a_runner_is_busy_from_the_threshold_rate_over_a_full_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(projection_runner.time, "monotonic", lambda: clock[0])
    load = _Load()
    clock[0] += 0.5
    load.count(BUSY_EVENTS_PER_S)  # the whole second's worth in half a second
    assert not load.busy  # judged only over a full second
    clock[0] += 0.5
    load.count(0)
    assert load.busy and load.ended == 100.5  # an empty batch does not move "ended"
    clock[0] += 1.0
    load.count(BUSY_EVENTS_PER_S - 1)
    assert not load.busy and load.ended == 102.0
    clock[0] += 2.0
    load.count(2 * BUSY_EVENTS_PER_S)  # a long batch: the rate over its two seconds
    assert load.busy
