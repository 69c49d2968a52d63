"""``/api/v1/users``: user management (admins), and ``/me`` for every caller."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from warest.api.auth import admin_only
from warest.api.codes import Code
from warest.api.dependencies import Users
from warest.api.envelope import Envelope, envelope
from warest.api.params import NAME_MAX, PASSWORD_MAX, Body
from warest.app.records import Principal, UserRecord
from warest.domain.values import Role


class CreateUserBody(Body, kw_only=True, forbid_unknown_fields=True):
    limits = {"username": NAME_MAX, "password": PASSWORD_MAX, "registry": NAME_MAX}

    username: str
    password: str | None = None
    role: Literal["user", "admin"] = "user"
    registry: str | None = None


def user_view(record: UserRecord) -> dict[str, Any]:
    """A user as the API shows it: never a hash."""
    return {
        "id": str(record.id),
        "username": record.username,
        "registry": record.registry,
        "role": record.role,
        "isAdmin": record.role == "admin",
        "disabled": record.disabled,
        "hasPassword": record.password_hash is not None,
        "hasApiKey": record.api_key_digest is not None,
        "keyRotatedAt": record.key_rotated_at.isoformat() if record.key_rotated_at else None,
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


class UsersController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @get("/me")
    async def me(self, request: Request[Principal, Any, Any], users: Users) -> Response[Envelope]:
        record = await users.get(request.user.username)
        return envelope(Code.SUCCESS, "Current user", user_view(record))

    @get("/", guards=[admin_only])
    async def list_users(self, users: Users) -> Response[Envelope]:
        records = await users.all()
        return envelope(Code.SUCCESS, f"{len(records)} users", [user_view(u) for u in records])

    @post("/", guards=[admin_only], status_code=201)
    async def create(self, users: Users, data: JSONBody[CreateUserBody]) -> Response[Envelope]:
        """Creates a user with its own registry; the API key is in the answer, once."""
        record, key = await users.create(
            data.username, password=data.password, role=Role(data.role), registry=data.registry
        )
        return envelope(Code.CREATED, "User created", {**user_view(record), "apiKey": key})

    @post("/{username:str}/rotate-key", guards=[admin_only], status_code=200)
    async def rotate_key(self, users: Users, username: FromPath[str]) -> Response[Envelope]:
        """A new API key; the previous one stops working at once."""
        key = await users.rotate_key(username)
        return envelope(Code.SUCCESS, "API key rotated", {"username": username, "apiKey": key})

    @post("/{username:str}/disable", guards=[admin_only], status_code=200)
    async def disable(self, users: Users, username: FromPath[str]) -> Response[Envelope]:
        record = await users.set_disabled(username, True)
        return envelope(Code.SUCCESS, "User disabled", user_view(record))

    @post("/{username:str}/enable", guards=[admin_only], status_code=200)
    async def enable(self, users: Users, username: FromPath[str]) -> Response[Envelope]:
        record = await users.set_disabled(username, False)
        return envelope(Code.SUCCESS, "User enabled", user_view(record))
