-- A replayed response carries the ETag of the first one (a created product's version, say).
ALTER TABLE idempotency_keys ADD COLUMN response_etag text;
