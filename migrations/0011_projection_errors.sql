-- A projection's last failure, for the processes that follow a projector they do not run
-- (RemoteReadModels, /healthz): written by the runner when a batch fails (outside the
-- batch's transaction, which is rolled back), cleared by its next batch or its recovery.
ALTER TABLE projection_tracking ADD COLUMN error text, ADD COLUMN failed_at timestamptz;
