-- Transactional outbox: written in the same transaction as the state change, published by the relay.
CREATE TABLE outbox_messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid        NOT NULL UNIQUE,
    exchange         text        NOT NULL,
    routing_key      text        NOT NULL,
    payload          jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    sent_at          timestamptz
);
CREATE INDEX ix_outbox_messages_unsent ON outbox_messages (next_attempt_at, id) WHERE sent_at IS NULL;

-- Inbox: one row per consumed event, written in the same transaction as the handler's effects.
CREATE TABLE inbox_messages (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
