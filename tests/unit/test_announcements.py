"""What a projector announces after each batch, and what a follower reads of it."""

from __future__ import annotations

from warest.infra.projection_runner import announcement, read_announcement


def test_a_batch_with_news_and_a_quiet_one_read_back_as_sent() -> None:
    assert announcement("webhook_outbox", 42, True) == "webhook_outbox:42"
    assert read_announcement(announcement("webhook_outbox", 42, True)) == ("webhook_outbox", 42, True)
    assert read_announcement(announcement("webhook_outbox", 43, False)) == ("webhook_outbox", 43, False)


def test_anything_else_on_the_channel_is_ignored() -> None:
    for payload in ("", "registry", "registry:", "registry:x", "registry:-1", ":"):
        assert read_announcement(payload) is None, payload
