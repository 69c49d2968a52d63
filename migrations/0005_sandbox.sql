-- State of the simulated WhatsApp network (the sandbox engine). Not event-sourced: it
-- stands in for WhatsApp's own servers and the phones around them.
CREATE TABLE sandbox_accounts (
    phone        text PRIMARY KEY,
    lid          text NOT NULL UNIQUE,
    push_name    text NOT NULL,
    about        text NOT NULL DEFAULT '',
    business     jsonb,
    picture      text,
    auto_read    boolean NOT NULL DEFAULT false,
    owner        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Linked devices: a gateway session logged in as an account.
CREATE TABLE sandbox_devices (
    registry     text NOT NULL,
    session_id   text NOT NULL,
    phone        text NOT NULL REFERENCES sandbox_accounts (phone),
    linked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (registry, session_id)
);

-- What each account received (read by the control API for external accounts).
CREATE TABLE sandbox_inbox (
    id           bigserial PRIMARY KEY,
    phone        text NOT NULL,
    wa_id        text NOT NULL,
    sender       text NOT NULL,
    chat         text NOT NULL,
    kind         text NOT NULL,
    text         text,
    at           timestamptz NOT NULL
);
CREATE INDEX sandbox_inbox_phone ON sandbox_inbox (phone, id);
