"""WebhookService against the in-memory ports: adding, changing, rotating and removing a
session's endpoints, the session config's ``primary`` endpoint, and what a session's
deletion does to them. Deliveries and preflight pings are the dispatcher's (not here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.fakes import (
    FakeMessagingQueries,
    FakeRegistryQueries,
    FakeWaiter,
    FakeWebhookQueries,
    InMemoryEventStore,
)
from warest.app.manager import SessionManager
from warest.app.records import Principal
from warest.app.runtime import QueueSettings
from warest.app.sessions import SessionService
from warest.app.webhooks import WebhookService
from warest.domain.errors import AlreadyExists, InvalidValue, NotFound, SessionNotFound
from warest.domain.webhooks import WebhookEndpoint

ALICE = Principal(user_id=uuid4(), username="alice", registry="ALICE", role="user")
BOB = Principal(user_id=uuid4(), username="bob", registry="BOB", role="user")
SECRET = "a-secret-of-more-than-24-characters"
URL = "https://hooks.example.com/in"


class FakeSecretBox:
    def seal(self, secret: str) -> str:
        return "sealed:" + secret[::-1]

    def open(self, sealed: str) -> str:
        return sealed.removeprefix("sealed:")[::-1]


class FakeGuard:
    """The egress guard: refuses the hosts in ``refused``."""

    def __init__(self) -> None:
        self.refused = {"10.0.0.1"}
        self.checked: list[str] = []

    async def check(self, url: str) -> None:
        self.checked.append(url)
        if any(f"//{host}" in url for host in self.refused):
            raise InvalidValue("url", "resolves to a private address")


class Hooks:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        waiter = FakeWaiter(self.store)
        manager = SessionManager({}, self.store, FakeMessagingQueries(self.store), QueueSettings())
        registry = FakeRegistryQueries(self.store)
        self.sessions = SessionService(self.store, registry, waiter, manager, "sandbox")
        self.queries = FakeWebhookQueries(self.store)
        self.guard = FakeGuard()
        self.rescans = 0
        self.service = WebhookService(
            self.store,
            waiter,
            self.sessions,
            self.queries,  # type: ignore[arg-type]  # deliveries and replays are not faked
            FakeSecretBox(),
            self.guard,
            sender=None,  # type: ignore[arg-type]  # no preflight here
            rotation_grace_s=3600,
            preflight_timeout_s=1.0,
            sha2="off",
            rescan=self.count_rescan,
        )

    def count_rescan(self) -> None:
        self.rescans += 1

    def aggregate(self, hook_id: Any) -> WebhookEndpoint:
        found = self.store.load(hook_id)
        assert isinstance(found, WebhookEndpoint)
        return found


@pytest.fixture
async def hooks() -> Hooks:
    h = Hooks()
    await h.sessions.ensure(ALICE, "main")
    return h


async def test_an_added_endpoint_shows_a_generated_secret_once_and_logs_it_sealed(hooks: Hooks) -> None:
    saved = await hooks.service.add(ALICE, "main", "crm", URL, events=["message_received"], description="CRM")
    assert saved.secret is not None and saved.secret.startswith("whsec_")
    view = saved.endpoint
    assert (view.name, view.url, view.events, view.description, view.enabled) == (
        "crm", URL, ["message_received"], "CRM", True
    )  # fmt: skip
    assert hooks.guard.checked == [URL]
    assert all(saved.secret.encode() not in stored.state for stored in hooks.store.log)
    assert hooks.aggregate(view.id).secret_sealed == FakeSecretBox().seal(saved.secret)
    assert (await hooks.service.endpoint(ALICE, "main", "crm")).id == view.id


async def test_a_given_secret_is_not_shown_and_a_weak_one_is_refused(hooks: Hooks) -> None:
    saved = await hooks.service.add(ALICE, "main", "crm", URL, SECRET)
    assert saved.secret is None
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.add(ALICE, "main", "other", URL, "short")
    assert refused.value.field == "secret"


@pytest.mark.parametrize(
    ("name", "url", "events", "field"),
    [
        ("bad name", URL, None, "name"),
        ("crm", "ftp://hooks.example.com", None, "url"),
        ("crm", "http://10.0.0.1/hook", None, "url"),  # the egress guard
        ("crm", URL, ["no_such_event"], "events"),
    ],
)
async def test_refused_endpoints_name_the_field_and_record_nothing(
    hooks: Hooks, name: str, url: str, events: list[str] | None, field: str
) -> None:
    before = len(hooks.store.log)
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.add(ALICE, "main", name, url, SECRET, events)
    assert refused.value.field == field
    assert len(hooks.store.log) == before


async def test_a_name_is_taken_until_removed_and_then_starts_fresh(hooks: Hooks) -> None:
    first = (await hooks.service.add(ALICE, "main", "crm", URL, SECRET)).endpoint
    with pytest.raises(AlreadyExists):
        await hooks.service.add(ALICE, "main", "crm", URL, SECRET)
    await hooks.service.remove(ALICE, "main", "crm")
    assert await hooks.service.endpoints(ALICE, "main") == []
    with pytest.raises(NotFound):
        await hooks.service.remove(ALICE, "main", "crm")
    assert hooks.queries.resets == []

    again = (await hooks.service.add(ALICE, "main", "crm", "https://hooks.example.com/v2", SECRET)).endpoint
    assert again.id == first.id and again.url == "https://hooks.example.com/v2"
    assert hooks.queries.resets == [first.id]  # its old failures are forgotten
    assert hooks.store.kinds(first.id) == ["Added", "Removed", "Added"]


async def test_update_changes_fields_and_enabling_again_starts_fresh(hooks: Hooks) -> None:
    hook = (await hooks.service.add(ALICE, "main", "crm", URL, SECRET)).endpoint
    view = await hooks.service.update(
        ALICE, "main", "crm", url="https://hooks.example.com/new", events=["call"], description="calls"
    )
    assert (view.url, view.events, view.description) == ("https://hooks.example.com/new", ["call"], "calls")

    view = await hooks.service.update(ALICE, "main", "crm", enabled=False)
    assert (view.enabled, view.disabled_by, view.disabled_reason) == (False, "owner", "disabled by its owner")
    assert hooks.queries.resets == []
    view = await hooks.service.update(ALICE, "main", "crm", enabled=True)
    assert view.enabled and view.disabled_reason is None
    assert hooks.queries.resets == [hook.id] and hooks.rescans == 1
    await hooks.service.update(ALICE, "main", "crm", enabled=True)  # enabled already: a kick only
    assert hooks.queries.resets == [hook.id] and hooks.rescans == 2
    assert hooks.store.kinds(hook.id) == ["Added", "Changed", "Disabled", "Enabled"]

    with pytest.raises(InvalidValue) as refused:
        await hooks.service.update(ALICE, "main", "crm", url="http://10.0.0.1/x")
    assert refused.value.field == "url"


async def test_rotating_keeps_the_old_secret_for_the_grace_period(hooks: Hooks) -> None:
    hook = (await hooks.service.add(ALICE, "main", "crm", URL, SECRET)).endpoint
    before = datetime.now(UTC)
    saved = await hooks.service.rotate(ALICE, "main", "crm")
    assert saved.secret is not None and saved.secret.startswith("whsec_")
    assert saved.endpoint.rotating and saved.endpoint.previous_until is not None
    assert before + timedelta(seconds=3600) <= saved.endpoint.previous_until
    assert saved.endpoint.previous_until <= datetime.now(UTC) + timedelta(seconds=3600)
    box = FakeSecretBox()
    assert hooks.aggregate(hook.id).secrets_sealed(before) == [box.seal(saved.secret), box.seal(SECRET)]

    at_once = await hooks.service.rotate(ALICE, "main", "crm", "another-secret-of-24-characters", grace_s=0)
    assert at_once.secret is None and not at_once.endpoint.rotating
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.rotate(ALICE, "main", "crm", grace_s=31 * 86400)
    assert refused.value.field == "graceSeconds"


async def test_another_tenant_never_reaches_the_endpoints(hooks: Hooks) -> None:
    await hooks.service.add(ALICE, "main", "crm", URL, SECRET)
    await hooks.sessions.ensure(BOB, "main")
    assert await hooks.service.endpoints(BOB, "main") == []
    with pytest.raises(NotFound):
        await hooks.service.remove(BOB, "main", "crm")
    with pytest.raises(SessionNotFound):
        await hooks.service.add(BOB, "alices-only", "crm", URL, SECRET)
    assert [v.name for v in await hooks.service.endpoints(ALICE, "main")] == ["crm"]


async def test_deleting_the_session_removes_its_endpoints_and_a_new_one_has_none(hooks: Hooks) -> None:
    crm = (await hooks.service.add(ALICE, "main", "crm", URL, SECRET)).endpoint
    await hooks.service.add(ALICE, "main", "ops", URL, SECRET)
    await hooks.sessions.delete(ALICE, "main")
    assert hooks.store.kinds(crm.id) == ["Added", "Removed"]

    await hooks.sessions.ensure(ALICE, "main")
    assert await hooks.service.endpoints(ALICE, "main") == []
    again = (await hooks.service.add(ALICE, "main", "crm", URL, SECRET)).endpoint
    assert again.id != crm.id  # the new incarnation's endpoint: nothing inherited


async def test_the_config_primary_endpoint_is_set_changed_and_removed(hooks: Hooks) -> None:
    assert await hooks.service.configure_primary(ALICE, "main", None, None, preflight=False) is None
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.configure_primary(ALICE, "main", None, SECRET, preflight=False)
    assert refused.value.field == "webhookUrl"
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.configure_primary(ALICE, "main", "not a url", None, preflight=False)
    assert refused.value.field == "webhookUrl"

    saved = await hooks.service.configure_primary(ALICE, "main", URL, SECRET, preflight=False)
    assert saved is not None and saved.endpoint.name == "primary" and saved.endpoint.url == URL
    changed = await hooks.service.configure_primary(
        ALICE, "main", "https://hooks.example.com/2", None, preflight=False
    )
    assert changed is not None and changed.endpoint.url == "https://hooks.example.com/2"
    with pytest.raises(InvalidValue) as refused:
        await hooks.service.configure_primary(ALICE, "main", None, "short", preflight=False)
    assert refused.value.field == "webhookSecret"

    assert await hooks.service.configure_primary(ALICE, "main", "", None, preflight=False) is None
    assert await hooks.service.endpoints(ALICE, "main") == []
