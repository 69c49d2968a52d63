-- The QR string a session shows right now, outside the event log: a login secret is not a
-- fact to keep for ever. The runtime writes it before it records Session.QrIssued (which
-- holds only the attempt and its lifetime); the webhook outbox reads it to put the QR into
-- the `qr` webhook event. One row per session: each QR replaces the one before.
CREATE TABLE IF NOT EXISTS session_login_qr (
    session_id  uuid PRIMARY KEY,
    attempt     integer NOT NULL,
    qr          text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now()
);
