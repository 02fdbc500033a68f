-- Responses stored per idempotency key (Stripe's semantics), scoped to the caller; kept at least 24 hours.
CREATE TABLE idempotency_keys (
    scope           text        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('InProgress', 'Completed')),
    response_status integer,
    response_type   text,
    response_location text,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);
