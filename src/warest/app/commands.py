"""Helpers shared by command handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from warest.app.ports import ConcurrencyConflict

T = TypeVar("T")


async def retry_on_conflict(command: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Runs a load-decide-save command again when another command saved first."""
    for attempt in range(attempts):
        try:
            return await command()
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
