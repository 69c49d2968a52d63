"""Users: registration, API keys, password login with lock-out, docs-session tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from warest.app.commands import retry_on_conflict
from warest.app.errors import LoginLocked, Unauthorized, Unavailable
from warest.app.ports import (
    AuthSessionStore,
    Clock,
    ConcurrencyConflict,
    EventStore,
    LoginGuardStore,
    PasswordHasher,
    ReadModelWaiter,
    RegistryQueries,
)
from warest.app.records import Principal, UserRecord
from warest.app.security import KeyDigester, new_api_key, new_registry_code, new_token, token_digest
from warest.domain import ids, values
from warest.domain.claims import Claim
from warest.domain.errors import AlreadyExists, InvalidValue, NotFound
from warest.domain.users import User
from warest.domain.values import Role

log = logging.getLogger("warest.users")

ADMIN_REGISTRY = "admin"


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lock_base_s: int = 60
    lock_max_s: int = 86400
    docs_session_ttl_s: int = 43200
    key_cache_s: float = 2.0


class UserService:
    def __init__(
        self,
        store: EventStore,
        queries: RegistryQueries,
        waiter: ReadModelWaiter,
        hasher: PasswordHasher,
        digester: KeyDigester,
        guard: LoginGuardStore,
        auth_sessions: AuthSessionStore,
        clock: Clock,
        policy: LoginPolicy | None = None,
    ) -> None:
        self._store = store
        self._queries = queries
        self._waiter = waiter
        self._hasher = hasher
        self._digester = digester
        self._guard = guard
        self._auth_sessions = auth_sessions
        self._clock = clock
        self._policy = policy or LoginPolicy()
        self._dummy_hash: str | None = None
        self._key_cache: dict[str, tuple[Principal | None, float]] = {}

    # -- commands ---------------------------------------------------------------

    async def create(
        self,
        username: str,
        *,
        password: str | None = None,
        role: Role = Role.USER,
        registry: str | None = None,
        with_api_key: bool = True,
        user_id: UUID | None = None,
        api_key: str | None = None,
    ) -> tuple[UserRecord, str | None]:
        """Registers a user; returns its record and its API key (shown this once)."""
        username = values.username(username)
        registry = values.registry(registry) if registry else new_registry_code()
        if password is not None:
            _check_password(password)
        key = api_key or (new_api_key() if with_api_key else None)
        password_hash = await self._hash(password) if password else None
        uid = user_id or uuid4()
        user = User.register(
            uid,
            username,
            registry,
            role,
            password_hash,
            self._digester.digest(key) if key else None,
        )
        username_claim = await self._claim("username", ids.username_claim_id(username), username, uid)
        registry_claim = await self._claim("registry", ids.registry_claim_id(registry), registry, uid)
        try:
            position = await self._store.save(user, username_claim, registry_claim)
        except ConcurrencyConflict:
            raise AlreadyExists(f"username '{username}' or registry '{registry}' is taken") from None
        record = await self._after(position, uid)
        return record, key

    async def rotate_key(self, username: str) -> str:
        key = new_api_key()

        async def command() -> int:
            user = await self._load(username)
            user.rotate_api_key(self._digester.digest(key))
            return await self._store.save(user)

        await self._settle(await retry_on_conflict(command))
        self._forget_keys()
        return key

    async def set_disabled(self, username: str, disabled: bool) -> UserRecord:
        async def command() -> tuple[int, UUID]:
            user = await self._load(username)
            if disabled:
                user.disable()
            else:
                user.enable()
            return await self._store.save(user), user.id

        position, uid = await retry_on_conflict(command)
        self._forget_keys()
        return await self._after(position, uid)

    async def all(self) -> list[UserRecord]:
        return await self._queries.users()

    async def get(self, username: str) -> UserRecord:
        record = await self._queries.user_by_username(username)
        if record is None:
            raise NotFound(f"user '{username}' not found")
        return record

    # -- authentication ---------------------------------------------------------

    async def authenticate_key(self, api_key: str) -> Principal | None:
        """The key's user. Answers are remembered for ``key_cache_s`` seconds (rotations and
        disablings made in this process take effect at once; elsewhere within that time)."""
        if not api_key or len(api_key) > 512:
            return None
        digest = self._digester.digest(api_key)
        now = time.monotonic()
        cached = self._key_cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = await self._queries.user_by_key_digest(digest)
        principal = None
        if (
            record is not None
            and not record.disabled
            and self._digester.matches(api_key, record.api_key_digest)
        ):
            principal = _principal(record)
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[digest] = (principal, now + self._policy.key_cache_s)
        return principal

    def _forget_keys(self) -> None:
        self._key_cache.clear()

    async def login(self, username: str, password: str, address: str) -> tuple[Principal, str]:
        """Checks a password; returns the principal and a new docs-session token."""
        username = username.strip()
        now = self._clock.now()
        locked = await self._guard.locked_until(username.lower(), address)
        if locked is not None and locked > now:
            raise LoginLocked(max(1, int((locked - now).total_seconds() + 0.999)))
        record = await self._queries.user_by_username(username)
        stored_hash = record.password_hash if record else None
        ok = await self._verify(stored_hash, password)
        if not ok or record is None or record.disabled:
            await self._fail(username.lower(), address, now)
            raise Unauthorized("invalid username or password")
        await self._guard.clear(username.lower(), address)
        token = new_token()
        expires = now + timedelta(seconds=self._policy.docs_session_ttl_s)
        await self._auth_sessions.create(token_digest(token), record.id, expires)
        return _principal(record), token

    async def principal_for_token(self, token: str) -> Principal | None:
        if not token or len(token) > 256:
            return None
        user_id = await self._auth_sessions.user_id(token_digest(token), self._clock.now())
        if user_id is None:
            return None
        record = await self._queries.user_by_id(user_id)
        if record is None or record.disabled:
            return None
        return _principal(record)

    async def start_docs_session(self, principal: Principal) -> str:
        token = new_token()
        expires = self._clock.now() + timedelta(seconds=self._policy.docs_session_ttl_s)
        await self._auth_sessions.create(token_digest(token), principal.user_id, expires)
        return token

    async def logout(self, token: str) -> None:
        if token:
            await self._auth_sessions.revoke(token_digest(token), self._clock.now())

    # -- the admin seeded from configuration -------------------------------------

    async def seed_admin(self, username: str, password: str, api_key: str) -> None:
        """Creates or updates the configured admin (fixed id; renames are events)."""
        if not api_key and not (username and password):
            log.warning("no admin configured (WAREST_AUTHADMIN_* / WAREST_ADMIN_APIKEY)")
            return
        username = values.username(username or "admin", "WAREST_AUTHADMIN_USERNAME")
        admin_id = ids.seeded_admin_id()
        existing = await self._store.get(admin_id)
        if existing is None:
            await self.create(
                username,
                password=password or None,
                role=Role.ADMIN,
                registry=ADMIN_REGISTRY,
                user_id=admin_id,
                api_key=api_key or None,
                with_api_key=bool(api_key),
            )
            log.info("seeded admin user %s", username)
            return
        user: User = existing
        to_save: list[object] = [user]
        if user.username.lower() != username.lower() or user.username != username:
            if user.username.lower() != username.lower():
                to_save.append(
                    await self._claim("username", ids.username_claim_id(username), username, admin_id)
                )
                old = await self._store.get(ids.username_claim_id(user.username))
                if old is not None:
                    old.release()
                    to_save.append(old)
            user.rename(username)
        if password and not await self._verify(user.password_hash, password):
            user.change_password(await self._hash(password))
        if api_key and not self._digester.matches(api_key, user.api_key_digest):
            user.rotate_api_key(self._digester.digest(api_key))
        user.change_role(Role.ADMIN)
        user.enable()
        if any(getattr(a, "pending_events", ()) for a in to_save):
            try:
                await self._settle(await self._store.save(*to_save))
            except ConcurrencyConflict:
                raise AlreadyExists(f"username '{username}' is taken by another user") from None
            log.info("updated seeded admin %s", username)

    # -- helpers --------------------------------------------------------------------

    async def _claim(self, kind: str, claim_id: UUID, key: str, owner: UUID) -> Claim:
        existing: Claim | None = await self._store.get(claim_id)
        if existing is None:
            return Claim.claim(claim_id, kind, key, owner)
        existing.reclaim(owner)
        return existing

    async def _load(self, username: str) -> User:
        record = await self.get(username)
        user: User | None = await self._store.get(record.id)
        if user is None:
            raise NotFound(f"user '{username}' not found")
        return user

    async def _settle(self, position: int) -> None:
        if not await self._waiter.wait(position):
            raise Unavailable("the registry read model is behind; try again")

    async def _after(self, position: int, user_id: UUID) -> UserRecord:
        await self._settle(position)
        record = await self._queries.user_by_id(user_id)
        if record is None:
            raise Unavailable("the registry read model is behind; try again")
        return record

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            # Spend the same time as a real check so unknown usernames are not revealed.
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(new_token())
            await asyncio.to_thread(self._hasher.verify, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self._hasher.verify, password_hash, password)

    async def _fail(self, username: str, address: str, now: datetime) -> None:
        failures = await self._guard.record_failure(username, address, now)
        policy = self._policy
        if failures >= policy.max_failures:
            steps = (failures - policy.max_failures) // policy.max_failures
            seconds = min(policy.lock_base_s * 2**steps, policy.lock_max_s)
            await self._guard.lock(username, address, now + timedelta(seconds=seconds))
            raise LoginLocked(seconds)


def _principal(record: UserRecord) -> Principal:
    return Principal(user_id=record.id, username=record.username, registry=record.registry, role=record.role)


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidValue("password", "must have at least 8 characters")
    if len(password) > 1024:
        raise InvalidValue("password", "must have at most 1024 characters")
