"""``/api/v1/sandbox``: the control API of the simulated network (only when it is enabled).

Every route acts for the caller's tenant: its sessions and the accounts it created.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.params import FromPath, FromQuery, JSONBody

from warest.api.codes import Code
from warest.api.dependencies import SANDBOX_OFF, Sandbox
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.params import MESSAGE_ID_MAX, NAME_MAX, Body, page_limit
from warest.app.records import Principal
from warest.app.sandbox import SandboxAccount

ABOUT_MAX = 1024
_TEXT_LIMITS = {
    "phone": NAME_MAX,
    "pushName": NAME_MAX,
    "lid": NAME_MAX,
    "about": ABOUT_MAX,
    "sessionId": NAME_MAX,
    "code": NAME_MAX,
    "from": NAME_MAX,
    "to": NAME_MAX,
    "quotedId": MESSAGE_ID_MAX,
    "kind": NAME_MAX,
}
# Fault options: bounded so that a timer or a counter built from them stays meaningful.
Seconds = Annotated[float, msgspec.Meta(ge=0, le=366 * 86_400)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=3_600_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class AccountBody(Body, kw_only=True, forbid_unknown_fields=True):
    limits = _TEXT_LIMITS
    whatsapp_text = frozenset({"pushName", "about"})  # what the account shows others on WhatsApp

    phone: str
    pushName: str | None = None  # noqa: N815
    lid: str | None = None
    about: str = ""
    business: dict[str, Any] | None = None
    picture: str | None = None
    autoRead: bool = False  # noqa: N815


class ScanBody(Body, kw_only=True, forbid_unknown_fields=True):
    limits = _TEXT_LIMITS

    sessionId: str  # noqa: N815
    phone: str


class PairBody(Body, kw_only=True, forbid_unknown_fields=True):
    limits = _TEXT_LIMITS

    phone: str
    code: str


class MessageBody(Body, kw_only=True, forbid_unknown_fields=True, rename={"sender": "from"}):
    limits = _TEXT_LIMITS
    whatsapp_text = frozenset({"text"})  # a message WhatsApp delivers: recorded, made safe

    sender: str
    to: str
    text: str
    quotedId: str | None = None  # noqa: N815


class FaultBody(Body, kw_only=True):
    limits = _TEXT_LIMITS

    kind: str
    sessionId: str | None = None  # noqa: N815
    phone: str | None = None
    seconds: Seconds | None = None
    count: Count | None = None
    reconnectAfterMs: Millis | None = None  # noqa: N815
    delayMs: Millis | None = None  # noqa: N815


def account_view(account: SandboxAccount) -> dict[str, Any]:
    return {
        "phone": account.phone,
        "jid": account.jid,
        "lid": f"{account.lid}@lid",
        "pushName": account.push_name,
        "about": account.about,
        "business": account.business,
        "picture": account.picture,
        "autoRead": account.auto_read,
    }


class SandboxController(Controller):
    path = "/api/v1/sandbox"
    tags = ["sandbox"]

    @post("/accounts", status_code=201)
    async def create_account(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, data: JSONBody[AccountBody]
    ) -> Response[Envelope]:
        """Creates an external WhatsApp account on the simulated network."""
        account = await sandbox.create_account(
            request.user.registry,
            data.phone,
            push_name=data.pushName,
            lid=data.lid,
            about=data.about,
            business=data.business,
            picture=data.picture,
            auto_read=data.autoRead,
        )
        return envelope(Code.CREATED, "Account created", account_view(account))

    @get("/accounts/{phone:str}")
    async def account(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, phone: FromPath[str]
    ) -> Response[Envelope]:
        account = await sandbox.account(request.user.registry, phone)
        return envelope(Code.SUCCESS, "Account", account_view(account))

    @post("/scan", status_code=200)
    async def scan(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, data: JSONBody[ScanBody]
    ) -> Response[Envelope]:
        """Scans the session's current QR with the account's phone: the session links."""
        account = await sandbox.scan(request.user.registry, data.sessionId, data.phone)
        return envelope(Code.SUCCESS, "QR scanned", {"sessionId": data.sessionId, **account_view(account)})

    @post("/pair", status_code=200)
    async def pair(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, data: JSONBody[PairBody]
    ) -> Response[Envelope]:
        """Enters a pairing code on the account's phone."""
        session = await sandbox.pair(request.user.registry, data.phone, data.code)
        return envelope(Code.SUCCESS, "Pairing code accepted", {"sessionId": session, "phone": data.phone})

    @post("/messages", status_code=200)
    async def send(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, data: JSONBody[MessageBody]
    ) -> Response[Envelope]:
        """An external account (yours) sends a text to a session or any account."""
        wa_id = await sandbox.send(
            request.user.registry, data.sender, data.to, data.text, quoted_id=data.quotedId
        )
        return envelope(
            Code.SUCCESS, "Message sent", {"messageId": wa_id, "from": data.sender, "to": data.to}
        )

    @post("/faults", status_code=200)
    async def fault(
        self, request: Request[Principal, Any, Any], sandbox: Sandbox, data: JSONBody[FaultBody]
    ) -> Response[Envelope]:
        """Injects a fault (logout, disconnect, stream_replaced, temp_ban, error_463, duplicate,
        out_of_order) into one of your sessions or the sessions linked to one of your accounts."""
        options = {
            k: v
            for k, v in (
                ("seconds", data.seconds),
                ("count", data.count),
                ("reconnectAfterMs", data.reconnectAfterMs),
                ("delayMs", data.delayMs),
            )
            if v is not None
        }
        result = await sandbox.fault(
            request.user.registry, data.kind, session=data.sessionId, phone=data.phone, options=options
        )
        return envelope(Code.SUCCESS, "Fault injected", result)

    @get("/accounts/{phone:str}/inbox")
    async def inbox(
        self,
        request: Request[Principal, Any, Any],
        sandbox: Sandbox,
        phone: FromPath[str],
        limit: FromQuery[int] = 100,
    ) -> Response[Envelope]:
        """What one of your external accounts has received, oldest first."""
        items = await sandbox.inbox(request.user.registry, phone, page_limit(limit, 1000))
        return envelope(
            Code.SUCCESS,
            f"{len(items)} messages",
            [{**asdict(item), "at": item.at.isoformat(), "messageId": item.wa_id} for item in items],
        )


@route(
    ["/api/v1/sandbox", "/api/v1/sandbox/{rest:path}"],
    http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def sandbox_off() -> None:
    """Mounted instead of ``SandboxController`` when the sandbox is off: says how to enable it."""
    raise ApiError(Code.NOT_FOUND, SANDBOX_OFF)
