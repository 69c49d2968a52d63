"""What ``warest serve`` checks before it starts the HTTP server, and how it runs it."""

from __future__ import annotations

import logging
import math
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from types import FrameType

from warest.config import Settings
from warest.supervision import STOP_REQUESTED

log = logging.getLogger("warest")


class CannotServe(RuntimeError):
    """``warest serve`` cannot start: the message says why (printed, exit status 1)."""


def check_port_free(host: str, port: int) -> None:
    """Fails at once if something listens on ``host:port`` already.

    granian binds every worker's socket with SO_REUSEPORT, so a second granian on the
    same port would bind too and share the connections with the first one. A socket
    without SO_REUSEPORT cannot share a port with any listener: binding one tells."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CannotServe(f"cannot listen on {url_of(host, port)}: {error.strerror or error}") from None


def check_database(url: str, timeout_s: int = 10) -> None:
    """Fails with the driver's message if the database does not answer."""
    import psycopg  # noqa: PLC0415

    try:
        with psycopg.connect(url, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = str(error).strip() or type(error).__name__
        raise CannotServe(f"cannot connect to the database (WAREST_DATABASE_URL): {reason}") from None


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce_when_serving(host: str, port: int, say: Callable[[str], None]) -> threading.Event:
    """Says ``warest listening on URL`` once the server answers HTTP; set the returned
    event to give up (the server stopped first)."""
    stop = threading.Event()
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    probe = f"{url_of(local, port)}/healthz"

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via HTTP_PROXY

    def wait() -> None:
        while not stop.wait(0.2):
            try:
                with direct.open(probe, timeout=2):
                    pass
            except urllib.error.HTTPError:
                pass  # it answers: that is all this waits for
            except OSError:
                continue
            say(f"warest listening on {url_of(host, port)}")
            return

    threading.Thread(target=wait, name="announce", daemon=True).start()
    return stop


def run_granian(settings: Settings, host: str, port: int) -> None:
    from granian import Granian  # noqa: PLC0415
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    Granian(
        "warest.asgi:create",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=settings.workers,
        log_enabled=False,
        http1_settings=HTTP1Settings(header_read_timeout=settings.header_timeout_ms),
        # A worker that has not stopped when its own stop deadline is past is killed.
        workers_kill_timeout=kill_timeout_s(settings),
    ).serve()


def kill_timeout_s(settings: Settings) -> int:
    """Connections get the shutdown timeout to finish, then the worker stops its parts in
    the same time again (``Container``): past both (and 2 s), the worker is killed."""
    return math.ceil(2 * settings.shutdown_timeout_ms / 1000) + 2


def _exit_normally(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_uvicorn(settings: Settings, host: str, port: int) -> None:
    """uvicorn stops on SIGTERM, then raises the signal again under the handler it found:
    the default one would end ``warest serve`` before it stops the embedded PostgreSQL. The
    handler found is this one: ``uvicorn.run`` returns by ``SystemExit(0)`` instead."""
    import uvicorn  # noqa: PLC0415

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_normally)
    try:
        uvicorn.run(
            "warest.asgi:create",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            http=header_timeout_protocol(settings.header_timeout_ms / 1000),
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_ms / 1000),
        )
    except SystemExit as error:
        # A start given up on SIGTERM is a requested stop, not a failed start (uvicorn: 3).
        if error.code != 0 and STOP_REQUESTED.is_set():
            raise SystemExit(0) from None
        raise


def header_timeout_protocol(timeout_s: float) -> type:
    """uvicorn's httptools protocol, closing a connection whose request headers are not
    complete ``timeout_s`` after it opened or the request began (uvicorn has no such limit:
    its keep-alive timer stops at the first byte of a request)."""
    import asyncio  # noqa: PLC0415

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
