-- Stream ownership (projection "streams"): which registry (tenant) and session each
-- event stream belongs to. Not every event carries its tenant (Session lifecycle events,
-- Message.Sent/StatusChanged do not), so the event history API joins the log on this table.
-- Claim streams are internal and never listed here.

CREATE TABLE rm_streams (
    stream_id         uuid PRIMARY KEY,          -- originator_id of the stream's events
    registry          text NOT NULL,             -- owning tenant
    session_id        text,                      -- the session (sessions, messages); NULL for users
    aggregate         text NOT NULL,             -- 'user' | 'session' | 'message'
    created_position  bigint NOT NULL            -- position of the stream's first creation event
);
CREATE INDEX rm_streams_registry ON rm_streams (registry, session_id);
