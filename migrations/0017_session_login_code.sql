-- The pairing code a session shows right now, outside the event log (like its QR,
-- session_login_qr): a login secret is not a fact to keep for ever. The runtime writes it
-- before it records Session.PairingCodeIssued (v2 holds only the phone); the webhook outbox
-- reads it to put the code into the `pairing_code` webhook event. One row per session: each
-- code replaces the one before; `issued_at` is the runtime's clock, so an event recorded
-- before the code in the row was issued is not given it.
CREATE TABLE IF NOT EXISTS session_login_code (
    session_id  uuid PRIMARY KEY,
    phone       text NOT NULL,
    code        text NOT NULL,
    issued_at   timestamptz NOT NULL
);
