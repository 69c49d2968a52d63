-- The server's group commit in one round trip (src/warest/infra/eventstore/async_commit.py).
-- The same statements as eventsourcing's recorder in lock mode, which the writer used to
-- send one by one (BEGIN, LOCK, NOTIFY, INSERT, COMMIT: five round trips, each waiting for
-- a busy event loop): the table lock makes commit order the id order, so a tailing reader
-- never skips an event. Called in autocommit: the statement's transaction is the batch's.
-- Table and channel are eventsourcing's names for the application "warest"; the schema is
-- the one this migration runs in.
CREATE FUNCTION warest_append(ids uuid[], versions bigint[], topics text[], states bytea[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    last_id bigint;
BEGIN
    LOCK TABLE warest_events IN EXCLUSIVE MODE;
    PERFORM pg_notify('warest_events', '');
    WITH inserted AS (
        INSERT INTO warest_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id
    )
    SELECT max(notification_id) INTO last_id FROM inserted;
    RETURN last_id;
END
$$;
