"""Errors raised by the domain when a command breaks a rule."""


class DomainError(Exception):
    """A command was refused by a domain rule."""


class AlreadyExists(DomainError):
    """The natural key of a new aggregate is taken."""


class NotFound(DomainError):
    """No aggregate with that identity (or it was deleted)."""


class SessionNotFound(NotFound):
    """No session of that name in the caller's registry (or it was deleted); another
    tenant's session is reported the same way."""


class InvalidValue(DomainError):
    """A value object could not be built from the given input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
