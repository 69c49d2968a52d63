"""Which failures mean the database is out of reach (503 and Retry-After) and which are bugs
(500): over the exceptions the drivers really raise, and along chains of causes."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import asyncpg
import psycopg
import psycopg_pool
import pytest
from eventsourcing import persistence

from warest.infra.db.outage import database_outage


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


async def test_asyncpg_refused_connection_is_an_outage(closed_port: int) -> None:
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{closed_port}/test", timeout=5)
    assert database_outage(refused.value), repr(refused.value)


def test_psycopg_refused_connection_and_its_eventsourcing_wrapping_are_outages(closed_port: int) -> None:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{closed_port}/test", connect_timeout=5)
    assert database_outage(refused.value)
    try:
        raise persistence.OperationalError(str(refused.value)) from refused.value
    except persistence.OperationalError as wrapped:
        assert database_outage(wrapped)


def test_psycopg_pool_timeout_is_an_outage(closed_port: int) -> None:
    pool = psycopg_pool.ConnectionPool(
        f"postgresql://postgres@127.0.0.1:{closed_port}/test", min_size=1, open=False, timeout=0.2
    )
    pool.open(wait=False)
    try:
        with pytest.raises(psycopg_pool.PoolTimeout) as timeout, pool.connection():
            pass
        assert database_outage(timeout.value)
    finally:
        pool.close()


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ConnectionFailureError("connection failure"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("crash shutdown"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
        persistence.InterfaceError("the connection is lost"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        TimeoutError(),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), [Errno 111] ..."),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    ],
    ids=repr,
)
def test_outages(error: BaseException) -> None:
    assert database_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UndefinedTableError('relation "x" does not exist'),
        asyncpg.UniqueViolationError("duplicate key value"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.DataError("invalid input for query argument $1"),
        psycopg.ProgrammingError("syntax error"),
        psycopg.errors.UniqueViolation("duplicate key value"),
        persistence.ProgrammingError("syntax error"),
        persistence.IntegrityError("duplicate key value"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError("something else"),
        ValueError("bad value"),
        KeyError("missing"),
        RuntimeError("a bug"),
    ],
    ids=repr,
)
def test_not_outages(error: BaseException) -> None:
    assert not database_outage(error)


def test_the_chain_of_causes_is_walked() -> None:
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        except asyncpg.PostgresError as lost:
            raise RuntimeError("event store write failed") from lost
    except RuntimeError as explicit:
        assert database_outage(explicit)
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError:
            raise KeyError("raised while handling it") from None
    except KeyError as suppressed:
        assert not database_outage(suppressed)  # `from None` hides it on purpose
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError:
            raise ValueError("raised while handling it")  # noqa: B904 - the implicit context
    except ValueError as implicit:
        assert database_outage(implicit)


def test_a_cycle_of_causes_ends() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert not database_outage(first)
