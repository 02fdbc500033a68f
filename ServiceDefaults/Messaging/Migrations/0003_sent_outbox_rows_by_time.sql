-- migrate: no-transaction
-- The cleanup deletes sent rows past their retention, oldest first. The only index on the outbox held the unsent
-- rows, so each cleanup walked the whole table to find the old sent ones, and once the table was large enough it
-- ran into the statement timeout and deleted nothing. Built without blocking the relay.
DROP INDEX CONCURRENTLY IF EXISTS ix_outbox_messages_sent;
CREATE INDEX CONCURRENTLY ix_outbox_messages_sent ON outbox_messages (sent_at) WHERE sent_at IS NOT NULL;
