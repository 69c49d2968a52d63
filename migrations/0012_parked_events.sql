-- Events a projection could not apply (an exception while applying it): recorded here in
-- the transaction that moves the projection past them, so one bad event never stops a
-- read model. `warest projections retry-parked` (or the admin API) applies them again
-- after a fix; a row stays until its event is applied.
CREATE TABLE projection_parked (
    name               text NOT NULL,
    position           bigint NOT NULL,
    originator_id      uuid NOT NULL,
    originator_version integer NOT NULL,
    topic              text NOT NULL,
    error              text NOT NULL,
    parked_at          timestamptz NOT NULL DEFAULT now(),
    attempts           integer NOT NULL DEFAULT 1,
    retried_at         timestamptz,
    PRIMARY KEY (name, position)
);

-- Moved by every retry of parked events: a runner that carries rows of its last page to
-- the next one (they need not be read again) checks it, since a retry changes rows
-- without moving the position.
ALTER TABLE projection_tracking ADD COLUMN revision bigint NOT NULL DEFAULT 0;
