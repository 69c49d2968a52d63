"""UserService against the in-memory ports: registration and its unique names, API keys and
their rotation, disabling, password login with lock-out, and the seeded admin."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.fakes import (
    FakeAuthSessions,
    FakeClock,
    FakeHasher,
    FakeLoginGuard,
    FakeRegistryQueries,
    FakeWaiter,
    InMemoryEventStore,
)
from warest.app.errors import LoginLocked, Unauthorized, Unavailable
from warest.app.records import UserRecord
from warest.app.security import KeyDigester
from warest.app.users import ADMIN_REGISTRY, LoginPolicy, UserService
from warest.domain import ids
from warest.domain.errors import AlreadyExists, DomainError, InvalidValue, NotFound
from warest.domain.values import Role

PASSWORD = "correct horse"
ADDRESS = "203.0.113.7"


@dataclass
class Users:
    store: InMemoryEventStore = field(default_factory=InMemoryEventStore)
    clock: FakeClock = field(default_factory=FakeClock)
    guard: FakeLoginGuard = field(default_factory=FakeLoginGuard)
    auth: FakeAuthSessions = field(default_factory=FakeAuthSessions)
    digester: KeyDigester = field(default_factory=lambda: KeyDigester(b"p" * 32))

    def __post_init__(self) -> None:
        self.waiter = FakeWaiter(self.store)
        self.service = UserService(
            self.store,
            FakeRegistryQueries(self.store),
            self.waiter,
            FakeHasher(),
            self.digester,
            self.guard,
            self.auth,
            self.clock,
            LoginPolicy(max_failures=3, lock_base_s=60, lock_max_s=600, key_cache_s=0.0),
        )


@pytest.fixture
def users() -> Users:
    return Users()


# -- registration ----------------------------------------------------------------------------


async def test_a_registered_user_gets_a_key_that_authenticates(users: Users) -> None:
    record, key = await users.service.create("alice", password=PASSWORD, registry="ALICE")
    assert key is not None and record.username == "alice" and record.registry == "ALICE"
    assert record.api_key_digest == users.digester.digest(key)  # only the digest is stored
    principal = await users.service.authenticate_key(key)
    assert principal is not None
    assert (principal.username, principal.registry, principal.role) == ("alice", "ALICE", "user")
    assert await users.service.authenticate_key(key + "x") is None
    assert await users.service.authenticate_key(record.api_key_digest) is None
    assert await users.service.authenticate_key("") is None


async def test_without_a_key_a_user_has_none(users: Users) -> None:
    record, key = await users.service.create("bob", with_api_key=False)
    assert key is None and record.api_key_digest is None
    assert len(record.registry) == 10 and record.registry.isupper()  # a generated registry code


async def test_a_username_is_taken_whatever_its_case_and_nothing_is_recorded(users: Users) -> None:
    await users.service.create("alice", registry="ONE")
    before = len(users.store.log)
    with pytest.raises(AlreadyExists, match="alice"):
        await users.service.create("ALICE", registry="TWO")
    with pytest.raises(AlreadyExists, match="ONE"):
        await users.service.create("carol", registry="one")  # registries too
    assert len(users.store.log) == before
    assert [u.username for u in await users.service.all()] == ["alice"]


@pytest.mark.parametrize(
    ("name", "password", "field_"),
    [("al", PASSWORD, "username"), ("a b c", PASSWORD, "username"), ("alice", "short", "password")],
)
async def test_invalid_names_and_passwords_are_refused_by_field(
    users: Users, name: str, password: str, field_: str
) -> None:
    with pytest.raises(InvalidValue) as refused:
        await users.service.create(name, password=password)
    assert refused.value.field == field_
    assert users.store.log == []


async def test_a_read_model_that_stays_behind_answers_unavailable(users: Users) -> None:
    users.waiter.behind = True
    with pytest.raises(Unavailable):
        await users.service.create("alice")


async def test_an_unknown_user_is_not_found(users: Users) -> None:
    with pytest.raises(NotFound):
        await users.service.get("nobody")
    with pytest.raises(NotFound):
        await users.service.rotate_key("nobody")


# -- keys and disabling -------------------------------------------------------------------------


async def test_rotating_a_key_retires_the_old_one_at_once(users: Users) -> None:
    _, old = await users.service.create("alice")
    assert old is not None and await users.service.authenticate_key(old) is not None
    new = await users.service.rotate_key("alice")
    assert new != old
    assert await users.service.authenticate_key(old) is None
    assert await users.service.authenticate_key(new) is not None
    record = await users.service.get("alice")
    assert record.api_key_digest == users.digester.digest(new)
    assert record.key_rotated_at is not None and record.key_rotated_at > record.created_at


async def test_a_disabled_user_cannot_use_its_key_nor_get_a_new_one(users: Users) -> None:
    record, key = await users.service.create("alice", password=PASSWORD)
    assert key is not None
    disabled = await users.service.set_disabled("alice", True)
    assert disabled.disabled and disabled.id == record.id
    assert await users.service.authenticate_key(key) is None
    with pytest.raises(DomainError, match="disabled"):
        await users.service.rotate_key("alice")
    with pytest.raises(Unauthorized):
        await users.service.login("alice", PASSWORD, ADDRESS)
    enabled = await users.service.set_disabled("alice", False)
    assert not enabled.disabled
    assert await users.service.authenticate_key(key) is not None
    assert users.store.kinds(record.id) == ["Registered", "Disabled", "Enabled"]


# -- password login ---------------------------------------------------------------------------------


async def test_a_login_gives_a_token_until_logout(users: Users) -> None:
    record, _ = await users.service.create("alice", password=PASSWORD)
    principal, token = await users.service.login(" Alice ", PASSWORD, ADDRESS)
    assert principal.user_id == record.id
    assert await users.service.principal_for_token(token) == principal
    await users.service.logout(token)
    assert await users.service.principal_for_token(token) is None


async def test_a_docs_token_expires(users: Users) -> None:
    await users.service.create("alice", password=PASSWORD)
    _, token = await users.service.login("alice", PASSWORD, ADDRESS)
    users.clock.advance(seconds=LoginPolicy().docs_session_ttl_s + 1)
    assert await users.service.principal_for_token(token) is None


async def test_failed_logins_lock_the_name_for_that_address(users: Users) -> None:
    await users.service.create("alice", password=PASSWORD)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await users.service.login("alice", "wrong password", ADDRESS)
    with pytest.raises(LoginLocked) as locked:
        await users.service.login("alice", "wrong password", ADDRESS)
    assert locked.value.retry_after_s == 60

    with pytest.raises(LoginLocked) as still:  # the right password does not open the lock
        await users.service.login("alice", PASSWORD, ADDRESS)
    assert still.value.retry_after_s == 60
    principal, _ = await users.service.login("alice", PASSWORD, "198.51.100.1")  # another address
    assert principal.username == "alice"

    users.clock.advance(seconds=59)
    with pytest.raises(LoginLocked) as almost:
        await users.service.login("ALICE", PASSWORD, ADDRESS)
    assert almost.value.retry_after_s == 1
    users.clock.advance(seconds=1)
    principal, _ = await users.service.login("alice", PASSWORD, ADDRESS)
    assert principal.username == "alice"
    assert users.guard.failures == {} and users.guard.locks == {}  # a success clears the count


async def test_after_the_threshold_each_failure_locks_and_the_lock_doubles_up_to_its_maximum(
    users: Users,
) -> None:
    await users.service.create("alice", password=PASSWORD)
    outcomes: list[int | None] = []
    for _ in range(16):
        try:
            await users.service.login("alice", "wrong password", ADDRESS)
        except LoginLocked as locked:
            outcomes.append(locked.retry_after_s)
            users.clock.advance(seconds=locked.retry_after_s)  # wait it out, fail again
        except Unauthorized:
            outcomes.append(None)
    # max_failures=3: the 3rd failure locks, every one after it too; each 3 more double it.
    assert outcomes == [None, None, 60, 60, 60, 120, 120, 120, 240, 240, 240, 480, 480, 480, 600, 600]


async def test_unknown_users_fail_and_lock_like_known_ones(users: Users) -> None:
    for _ in range(2):
        with pytest.raises(Unauthorized, match="invalid username or password"):
            await users.service.login("nobody", PASSWORD, ADDRESS)
    with pytest.raises(LoginLocked):
        await users.service.login("nobody", PASSWORD, ADDRESS)


# -- the seeded admin -------------------------------------------------------------------------------


async def test_the_seeded_admin_is_created_then_updated_in_place(users: Users) -> None:
    await users.service.seed_admin("admin", PASSWORD, "wrst_seeded-admin-key")
    admin_id = ids.seeded_admin_id()
    admin = await users.service.get("admin")
    assert (admin.id, admin.role, admin.registry) == (admin_id, Role.ADMIN.value, ADMIN_REGISTRY)
    assert await users.service.authenticate_key("wrst_seeded-admin-key") is not None

    before = len(users.store.log)
    await users.service.seed_admin("admin", PASSWORD, "wrst_seeded-admin-key")  # unchanged: nothing
    assert len(users.store.log) == before

    await users.service.seed_admin("root", "another password", "wrst_new-admin-key")
    assert users.store.kinds(admin_id)[1:] == ["Renamed", "PasswordChanged", "ApiKeyRotated"]
    assert await users.service.authenticate_key("wrst_seeded-admin-key") is None
    principal, _ = await users.service.login("root", "another password", ADDRESS)
    assert principal.user_id == admin_id
    # The old name was released: a user may take it now.
    record, _ = await users.service.create("admin")
    assert record.id != admin_id


async def test_the_seeded_admin_cannot_take_a_users_name(users: Users) -> None:
    await users.service.seed_admin("admin", PASSWORD, "")
    await users.service.create("alice")
    with pytest.raises(AlreadyExists):
        await users.service.seed_admin("alice", PASSWORD, "")
    assert (await users.service.get("admin")).id == ids.seeded_admin_id()


async def test_keys_issued_under_one_pepper_do_not_authenticate_under_another(users: Users) -> None:
    _, key = await users.service.create("alice")
    assert key is not None
    elsewhere = Users(store=users.store, digester=KeyDigester(b"q" * 32))  # the same log, another pepper
    assert await elsewhere.service.authenticate_key(key) is None
    assert await users.service.authenticate_key(key) is not None


async def test_a_digest_found_by_lookup_is_still_compared(users: Users) -> None:
    """The key is digested, looked up, then compared with the stored digest in constant time:
    a read model answering with another user's row does not let the key in."""
    _, key = await users.service.create("alice")
    await users.service.create("bob")
    assert key is not None
    bob = await users.service.get("bob")
    queries = FakeRegistryQueries(users.store)

    async def wrong_row(digest: str) -> UserRecord | None:
        return bob

    queries.user_by_key_digest = wrong_row  # type: ignore[method-assign]
    service = UserService(
        users.store, queries, users.waiter, FakeHasher(), users.digester, users.guard, users.auth, users.clock
    )
    assert await service.authenticate_key(key) is None
