-- Messaging read models (projection "messaging").

-- Which message aggregate a WhatsApp message id of a session belongs to. Receipts name
-- messages by their WhatsApp id; outbound messages get it only once sent.
CREATE TABLE rm_message_index (
    registry     text NOT NULL,
    session_id   text NOT NULL,
    wa_id        text NOT NULL,
    message_id   uuid NOT NULL,
    PRIMARY KEY (registry, session_id, wa_id)
);

-- Outbound messages recorded as queued and not yet sent or failed: the queue that
-- survives restarts. Ordered by log position.
CREATE TABLE rm_pending_outbound (
    message_id   uuid PRIMARY KEY,
    registry     text NOT NULL,
    session_id   text NOT NULL,
    local_id     text NOT NULL,
    chat         text NOT NULL,
    text         text,
    mentions     text[] NOT NULL DEFAULT '{}',
    reply_to     text,
    queued_at    timestamptz NOT NULL,
    position     bigint NOT NULL
);
CREATE INDEX rm_pending_outbound_session ON rm_pending_outbound (registry, session_id, position);
