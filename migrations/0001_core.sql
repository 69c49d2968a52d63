-- Operational tables that are not projections of the event log.

-- Position of each read model in the event log; updated in the same transaction as the
-- read model's rows.
CREATE TABLE projection_tracking (
    name        text PRIMARY KEY,
    position    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Opaque server-side tokens behind the WAREST_DOCS_SESSION cookie. Only a SHA-256 digest
-- of the token is stored; logout revokes the row.
CREATE TABLE auth_sessions (
    token_digest text PRIMARY KEY,
    user_id      uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

-- Failed logins per (username, client address), for the growing lock-out. The address
-- is the TCP peer, or X-Forwarded-For only when the peer is a trusted proxy.
CREATE TABLE login_failures (
    username     text NOT NULL,
    address      text NOT NULL,
    failures     integer NOT NULL DEFAULT 0,
    last_failure timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    PRIMARY KEY (username, address)
);
