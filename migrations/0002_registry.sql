-- Registry read model (projection "registry"): users and sessions.

CREATE TABLE rm_users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    registry        text NOT NULL UNIQUE,
    role            text NOT NULL,
    disabled        boolean NOT NULL DEFAULT false,
    password_hash   text,
    api_key_digest  text UNIQUE,
    key_rotated_at  timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    position        bigint NOT NULL
);

CREATE TABLE rm_sessions (
    id              uuid PRIMARY KEY,
    registry        text NOT NULL,
    session_id      text NOT NULL,
    label           text NOT NULL,
    auto_start      boolean NOT NULL,
    engine          text NOT NULL,
    webhook_url     text,
    status          text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    position        bigint NOT NULL,
    UNIQUE (registry, session_id)
);
