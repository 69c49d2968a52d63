-- A session's webhook URL is its WebhookEndpoint "primary" (wh_endpoints), read by the
-- API; the column the registry projection kept from Session.Configured is dropped.
ALTER TABLE rm_sessions DROP COLUMN webhook_url;
