"""Errors the application raises toward the API (mapped to envelope codes there)."""

from __future__ import annotations


class AppError(Exception):
    """Base of application errors."""


class Unauthorized(AppError):
    """No valid credentials."""


class Forbidden(AppError):
    """Credentials are valid but not allowed to do this."""


class LoginLocked(AppError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s}s")
        self.retry_after_s = retry_after_s


class Unavailable(AppError):
    """A dependency (database, read model) did not answer in time."""
