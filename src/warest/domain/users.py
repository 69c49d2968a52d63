"""The User aggregate: an API consumer owning one registry (tenant namespace)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from warest.domain import model
from warest.domain.errors import DomainError
from warest.domain.values import Role


class User(model.Aggregate):
    username: str
    registry: str
    role: Role
    password_hash: str | None
    api_key_digest: str | None
    disabled: bool

    class Registered(model.Created, frozen=True, kw_only=True):
        username: str
        registry: str
        role: Role
        password_hash: str | None = None
        api_key_digest: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.username = self.username
            aggregate.registry = self.registry
            aggregate.role = self.role
            aggregate.password_hash = self.password_hash
            aggregate.api_key_digest = self.api_key_digest
            aggregate.disabled = False

    class Renamed(model.DomainEvent, frozen=True, kw_only=True):
        username: str

        def apply(self, aggregate: Any) -> None:
            aggregate.username = self.username

    class PasswordChanged(model.DomainEvent, frozen=True, kw_only=True):
        password_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.password_hash = self.password_hash

    class ApiKeyRotated(model.DomainEvent, frozen=True, kw_only=True):
        api_key_digest: str

        def apply(self, aggregate: Any) -> None:
            aggregate.api_key_digest = self.api_key_digest

    class RoleChanged(model.DomainEvent, frozen=True, kw_only=True):
        role: Role

        def apply(self, aggregate: Any) -> None:
            aggregate.role = self.role

    class Disabled(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.disabled = True

    class Enabled(model.DomainEvent, frozen=True, kw_only=True):
        def apply(self, aggregate: Any) -> None:
            aggregate.disabled = False

    @classmethod
    def register(
        cls,
        user_id: UUID,
        username: str,
        registry: str,
        role: Role,
        password_hash: str | None,
        api_key_digest: str | None,
    ) -> User:
        return cls._create(
            cls.Registered,
            user_id,
            username=username,
            registry=registry,
            role=role,
            password_hash=password_hash,
            api_key_digest=api_key_digest,
        )

    def rename(self, username: str) -> None:
        if username != self.username:
            self._trigger(User.Renamed, username=username)

    def change_password(self, password_hash: str) -> None:
        self._trigger(User.PasswordChanged, password_hash=password_hash)

    def rotate_api_key(self, api_key_digest: str) -> None:
        if self.disabled:
            raise DomainError("a disabled user cannot get a new API key")
        if api_key_digest != self.api_key_digest:
            self._trigger(User.ApiKeyRotated, api_key_digest=api_key_digest)

    def change_role(self, role: Role) -> None:
        if role != self.role:
            self._trigger(User.RoleChanged, role=role)

    def disable(self) -> None:
        if not self.disabled:
            self._trigger(User.Disabled)

    def enable(self) -> None:
        if self.disabled:
            self._trigger(User.Enabled)


User.Registered.aggregate_class = User
