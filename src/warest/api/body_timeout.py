"""A request body that stops arriving is answered, not waited for forever.

The HTTP servers time out a request whose headers do not arrive (their own settings), but
once the headers are in, the body is read by the application through ``receive()``: a
client that announces a ``Content-Length`` and sends less would hold the handler (and the
connection) forever. Here each wait for the next piece of the body is bounded; when it
runs out, the client gets a 400 envelope with ``Connection: close`` and the application
sees the client as gone. Once the body is complete, ``receive()`` is passed through as it
is (handlers may wait on it to learn of a disconnect).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from warest.api.codes import HTTP_STATUS, Code
from warest.api.middleware import STATUS_KEY

log = logging.getLogger("warest.access")


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = False
        complete = False
        timed_out = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # answered already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def guarded_receive() -> ReceiveMessage:
            nonlocal complete, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                timed_out = True
                log.warning(
                    "%s %s: request body incomplete after %.0f s; answered 400 and closed",
                    scope.get("method"),
                    scope.get("path"),
                    self.timeout_s,
                )
                if not started:
                    await self._answer(scope, send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, guarded_receive, guarded_send)

    async def _answer(self, scope: Scope, send: Send) -> None:
        status = HTTP_STATUS[Code.BAD_REQUEST]
        body = msgspec.json.encode(
            {
                "status": False,
                "code": int(Code.BAD_REQUEST),
                "message": f"request body incomplete: nothing received for {self.timeout_s:.0f} s",
                "results": [],
            }
        )
        scope[STATUS_KEY] = status  # type: ignore[literal-required]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
