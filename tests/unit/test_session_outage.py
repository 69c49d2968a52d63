"""Session lifecycle events are transitions: an outage is recorded once, however many
reconnect attempts the engine reports."""

from __future__ import annotations

from datetime import UTC, datetime

from warest.app.webhook_events import Renderer
from warest.domain.sessions import Session, Status

SINCE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def open_session() -> Session:
    session = Session.create("REG", "main", None, True, "neonize")
    session.opened("628111@s.whatsapp.net", None, "Bot")
    session.collect_events()
    return session


def recorded(session: Session) -> list[str]:
    return [type(e).__name__ for e in session.collect_events()]


def test_an_outage_is_one_loss_however_many_attempts() -> None:
    session = open_session()
    for attempt in range(1, 13):
        session.reconnecting(attempt, "connection_lost")
        session.connecting()  # a restart within the outage is not a transition either
    assert recorded(session) == ["ConnectionLost"]
    assert session.status == Status.RECONNECTING


def test_a_lasting_outage_is_suspended_once_and_ends_with_one_opening() -> None:
    session = open_session()
    session.reconnecting(1, "connection_lost")
    session.suspended("connection_lost", SINCE)
    session.suspended("connection_lost", SINCE)
    session.reconnecting(40, "connection_lost")
    assert session.status == Status.SUSPENDED
    session.opened("628111@s.whatsapp.net", None, "Bot")
    assert recorded(session) == ["ConnectionLost", "Suspended", "Opened"]
    session.reconnecting(1, "again")  # a new outage is a new loss
    assert recorded(session) == ["ConnectionLost"]


def test_suspension_needs_an_outage() -> None:
    session = open_session()
    session.suspended("late timer", SINCE)
    assert recorded(session) == [] and session.status == Status.OPEN


def test_each_outage_transition_is_one_session_status_webhook() -> None:
    session = open_session()
    for attempt in range(1, 6):
        session.reconnecting(attempt, "connection_lost")
    session.suspended("connection_lost", SINCE)
    session.opened("628111@s.whatsapp.net", None, "Bot")
    rendered = [Renderer().render(e, lambda _id: None) for e in session.collect_events()]
    assert [(name, data["tags"]) for name, data in filter(None, rendered)] == [
        ("session_status", "reconnecting"),
        ("session_status", "suspended"),
        ("session_status", "open"),
    ]
    suspended = rendered[1]
    assert suspended is not None and suspended[1]["since"] == SINCE.isoformat()
