-- Webhook outbox (projection "webhook_outbox") and delivery state (the dispatcher).
--
-- The outbox is a durable queue, not a rebuildable read model: its rows carry delivery
-- state. The projection keeps its own copy of what it needs to fan events out (endpoints,
-- sessions, user names) so that it reads the log in order and never races another
-- read model.

CREATE TABLE wh_endpoints (
    id                     uuid PRIMARY KEY,
    registry               text NOT NULL,
    session                text NOT NULL,
    session_id             uuid NOT NULL,          -- the Session aggregate id
    name                   text NOT NULL,
    url                    text NOT NULL,
    secret_sealed          text NOT NULL,
    previous_secret_sealed text,
    previous_until         timestamptz,
    events                 text NOT NULL DEFAULT '',  -- comma-separated names; '' = every event
    description            text,
    enabled                boolean NOT NULL,
    disabled_reason        text,
    disabled_by            text,
    removed                boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    version                integer NOT NULL,
    position               bigint NOT NULL
);
CREATE INDEX wh_endpoints_session ON wh_endpoints (session_id);

CREATE TABLE wh_sessions (
    id        uuid PRIMARY KEY,
    registry  text NOT NULL,
    name      text NOT NULL,
    label     text NOT NULL,
    deleted   boolean NOT NULL DEFAULT false
);

CREATE TABLE wh_users (
    id        uuid PRIMARY KEY,
    registry  text NOT NULL,
    username  text NOT NULL
);

-- One row per webhook event of a session (whether or not an endpoint wanted it), with the
-- exact body every delivery of it sends: replays of any range reuse ids and bytes.
CREATE TABLE wh_events (
    position    bigint PRIMARY KEY,
    session_id  uuid NOT NULL,
    seq         bigint NOT NULL,
    event       text NOT NULL,
    event_id    text NOT NULL,
    ts          bigint NOT NULL,        -- event time, epoch milliseconds (= body.ts)
    registry    text NOT NULL,
    session     text NOT NULL,
    label       text NOT NULL,
    username    text,
    body        bytea NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX wh_events_session ON wh_events (session_id, position);
CREATE INDEX wh_events_ts ON wh_events (session_id, ts);

CREATE TABLE wh_session_seq (
    session_id  uuid PRIMARY KEY,
    seq         bigint NOT NULL
);

-- queue_id orders the dispatcher's work: the outbox assigns it in log order, a replay or
-- a redelivery assigns a new one (the delivery goes to the end of its lane again).
CREATE SEQUENCE wh_queue;

CREATE TABLE wh_deliveries (
    endpoint_id      uuid NOT NULL,
    position         bigint NOT NULL REFERENCES wh_events (position),
    queue_id         bigint NOT NULL DEFAULT nextval('wh_queue'),
    delivery_id      text NOT NULL UNIQUE,   -- webhook-id: stable across retries and replays
    session_id       uuid NOT NULL,
    event            text NOT NULL,
    status           text NOT NULL DEFAULT 'pending',   -- pending, delivered, failed
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    latency_ms       integer,
    replays          integer NOT NULL DEFAULT 0,
    actions          jsonb,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    PRIMARY KEY (endpoint_id, position)
);
CREATE INDEX wh_deliveries_pending ON wh_deliveries (queue_id) WHERE status = 'pending';
CREATE INDEX wh_deliveries_lane ON wh_deliveries (session_id, endpoint_id, queue_id) WHERE status = 'pending';
CREATE INDEX wh_deliveries_session_lane ON wh_deliveries (session_id, queue_id) WHERE status = 'pending';
CREATE INDEX wh_deliveries_session ON wh_deliveries (session_id, queue_id DESC);

CREATE TABLE wh_attempts (
    id           bigserial PRIMARY KEY,
    endpoint_id  uuid NOT NULL,
    position     bigint NOT NULL,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    status       integer,
    latency_ms   integer NOT NULL,
    error        text
);
CREATE INDEX wh_attempts_delivery ON wh_attempts (endpoint_id, position, id);

-- Circuit breaker and cool-off per endpoint: survive restarts.
CREATE TABLE wh_endpoint_health (
    endpoint_id      uuid PRIMARY KEY,
    failures         integer NOT NULL DEFAULT 0,
    open_until       timestamptz,
    cooloff_until    timestamptz,
    last_success_at  timestamptz,
    last_failure_at  timestamptz,
    last_error       text
);
