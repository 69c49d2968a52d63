"""Which failures mean the database is out of reach: the API answers them 503 with
``Retry-After`` (the request may succeed when the database is back) instead of 500.

The HTTP layer may not import the drivers (import contract), so the composition root hands
``database_outage`` to ``create_app``. A failure counts when it, or anything in its chain of
causes (``__cause__``, else ``__context__`` unless hidden by ``from None``), is one of:

- asyncpg: a lost or refused connection (SQLSTATE class 08), the server shutting down or
  starting up (57P01-57P03), too many connections (53300), and the ``InterfaceError`` of a
  closed connection or pool;
- psycopg: ``OperationalError`` (which includes the pool's timeout and a closed connection);
- eventsourcing: the ``OperationalError`` and ``InterfaceError`` it turns psycopg's into (the
  library retries both itself, as transient);
- the network: a refused, reset or unreachable connection, a name that does not resolve, a
  timeout (a pool acquisition, a connect).

Anything else (a bad query, a constraint, a bug) stays a 500.
"""

from __future__ import annotations

import errno
import socket

import asyncpg
import psycopg
from eventsourcing import persistence

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    psycopg.OperationalError,
    persistence.OperationalError,
    persistence.InterfaceError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)

CLOSED_MESSAGES = frozenset({"connection is closed", "pool is closing", "pool is closed"})
"""asyncpg's ``InterfaceError`` messages for a connection or pool that is gone (the class is
also raised for misuse, which is a bug)."""

NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)

MULTIPLE_ADDRESSES = "Multiple exceptions: "
"""asyncio's message when every address of a host (``localhost``: ::1 and 127.0.0.1) failed."""


def database_outage(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached for now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _outage(current):
            return True
        if current.__cause__ is not None:
            current = current.__cause__
        else:  # ``raise ... from None`` hides the context on purpose
            current = None if current.__suppress_context__ else current.__context__
    return False


def _outage(error: BaseException) -> bool:
    if isinstance(error, OUTAGE_ERRORS):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        return str(error) in CLOSED_MESSAGES
    if isinstance(error, OSError):
        return error.errno in NETWORK_ERRNOS or (
            error.errno is None and str(error).startswith(MULTIPLE_ADDRESSES)
        )
    return False
