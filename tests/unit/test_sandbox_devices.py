"""The sandbox network's index of linked sessions, kept both ways."""

from __future__ import annotations

from warest.infra.engines.sandbox.network import Devices


def test_sessions_of_a_phone_in_the_order_they_were_linked() -> None:
    devices = Devices({("t1", "b"): "6281", ("t2", "a"): "6282", ("t1", "a"): "6281"})
    devices.link(("t3", "z"), "6281")
    assert devices.of("6281") == [("t1", "b"), ("t1", "a"), ("t3", "z")]
    assert devices.of("6282") == [("t2", "a")]
    assert devices.of("6289") == []  # an external account: no linked session
    assert devices.phone_of(("t1", "a")) == "6281" and devices.phone_of(("t9", "x")) is None


def test_relinking_a_session_moves_it_and_unlinking_forgets_it() -> None:
    devices = Devices()
    devices.link(("t1", "s"), "6281")
    devices.link(("t1", "s"), "6282")  # the session was linked to another phone since
    assert devices.of("6281") == [] and devices.of("6282") == [("t1", "s")]
    devices.unlink(("t1", "s"))
    devices.unlink(("t1", "s"))  # twice: nothing left to forget
    assert devices.of("6282") == [] and devices.phone_of(("t1", "s")) is None
