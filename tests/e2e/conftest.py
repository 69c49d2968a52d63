"""Fixtures of the end-to-end tests: a real webhook receiver process per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.receiver import ReceiverProcess


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as process:
        yield process
