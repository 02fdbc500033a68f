-- The highest aggregate version each consumer has applied, for consumers that ignore stale events
-- (ConsumerOptions.IgnoreStaleAggregateVersions). Written in the same transaction as the inbox row.
CREATE TABLE consumer_aggregate_versions (
    consumer      text        NOT NULL,
    aggregate_id  text        NOT NULL,
    version       bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, aggregate_id)
);
