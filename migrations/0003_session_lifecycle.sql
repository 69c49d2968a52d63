-- Registry read model: session lifecycle as reported by the engines.
ALTER TABLE rm_sessions
    ADD COLUMN me_jid            text,
    ADD COLUMN me_lid            text,
    ADD COLUMN push_name         text,
    ADD COLUMN status_reason     text,
    ADD COLUMN status_at         timestamptz,
    ADD COLUMN last_connected_at timestamptz;

CREATE INDEX rm_sessions_autostart ON rm_sessions (status) WHERE auto_start;
