"""A receiver answering 404 or 410 disables its endpoint at once, whatever came before (the
rule has no threshold: earlier successes do not excuse it); its neighbours among the 4xx
answers fail the delivery and leave the endpoint enabled. ``DeliveryDisabler`` records the
disabling as an event of the endpoint, once."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from tests.fakes import InMemoryEventStore
from tests.unit.test_webhook_dispatch import OK, A, B, Harness, delivery, policy, until
from warest.app.webhook_dispatch import Answer
from warest.app.webhooks import DeliveryDisabler
from warest.domain.webhooks import WebhookEndpoint


@pytest.mark.parametrize("gone", [404, 410])
async def test_gone_after_successes_still_disables_at_once(gone: int) -> None:
    async with Harness(policy(sweep_s=0.02)) as h:
        h.sender.script(A.url, OK, OK, Answer(gone, 3))
        h.add(delivery(1, A), delivery(2, A), delivery(3, A), delivery(4, A), delivery(5, B))
        await until(lambda: bool(h.control.calls) and h.status(5) == "delivered")
        await asyncio.sleep(0.05)  # loads and sweeps: nothing more goes to A

        assert h.statuses(1, 2) == {"delivered"}
        assert h.sender.ids(url=A.url) == ["q1", "q2", "q3"]
        assert h.control.calls == [(A.id, f"the receiver answered {gone}")]
        assert h.statuses(3, 4) == {"pending"}


@pytest.mark.parametrize("gone", [404, 410])
async def test_gone_during_retries_disables_without_using_them_up(gone: int) -> None:
    async with Harness(policy(retries=5)) as h:
        h.sender.script(A.url, Answer(503, 3), Answer(gone, 3))
        h.add(delivery(1, A))
        await until(lambda: bool(h.control.calls))

        assert h.sender.ids(url=A.url) == ["q1", "q1"]
        assert h.control.calls == [(A.id, f"the receiver answered {gone}")]
        assert h.status(1) == "pending"


@pytest.mark.parametrize("status", [400, 405, 406, 409, 411, 412, 451])
async def test_other_client_errors_fail_the_delivery_and_keep_the_endpoint(status: int) -> None:
    async with Harness() as h:
        h.sender.script(A.url, Answer(status, 3))
        h.add(delivery(1, A), delivery(2, A))
        await until(lambda: h.statuses(1, 2) == {"failed", "delivered"})

    assert h.status(1) == "failed" and h.status(2) == "delivered"
    assert h.control.calls == []


# -- the disabling, as an event --------------------------------------------------------------


def stored_endpoint(store: InMemoryEventStore) -> UUID:
    hook = WebhookEndpoint.add("REG", "main", "hooks", "https://example.com/hook", "sealed")
    store.put(hook)
    return hook.id


async def test_delivery_disables_the_endpoint_with_its_reason() -> None:
    store = InMemoryEventStore()
    hook_id = stored_endpoint(store)
    await DeliveryDisabler(store).disable_for_delivery(hook_id, "the receiver answered 410")

    assert store.kinds(hook_id) == ["Added", "Disabled"]
    disabled = store.events(hook_id)[-1]
    assert (disabled.by, disabled.reason) == ("delivery", "the receiver answered 410")


async def test_an_endpoint_disabled_or_removed_already_records_nothing() -> None:
    store = InMemoryEventStore()
    hook_id = stored_endpoint(store)
    disabler = DeliveryDisabler(store)
    await disabler.disable_for_delivery(hook_id, "the receiver answered 404")
    await disabler.disable_for_delivery(hook_id, "the receiver answered 404")
    assert store.kinds(hook_id) == ["Added", "Disabled"]

    removed = store.load(hook_id)
    removed.enable()
    removed.remove()
    store.put(removed)
    await disabler.disable_for_delivery(hook_id, "the receiver answered 404")
    assert store.kinds(hook_id) == ["Added", "Disabled", "Enabled", "Removed"]
    await disabler.disable_for_delivery(UUID(int=7), "unknown endpoint")  # nothing to disable
    assert len(store.log) == 4


async def test_a_concurrent_change_is_kept_and_the_disabling_retried() -> None:
    store = InMemoryEventStore()
    hook_id = stored_endpoint(store)
    load = store.get
    raced: list[bool] = []

    async def get_then_owner_changes(aggregate_id: UUID) -> Any:
        aggregate = await load(aggregate_id)
        if not raced:
            raced.append(True)
            other = store.load(aggregate_id)
            other.change(description_="changed meanwhile")
            store.put(other)
        return aggregate

    store.get = get_then_owner_changes  # type: ignore[method-assign]
    await DeliveryDisabler(store).disable_for_delivery(hook_id, "the receiver answered 410")

    assert store.conflicts == 1
    assert store.kinds(hook_id) == ["Added", "Changed", "Disabled"]
    assert store.load(hook_id).description == "changed meanwhile"
