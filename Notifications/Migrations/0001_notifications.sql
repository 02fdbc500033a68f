-- Messages the service has produced for people, one per (event, kind).
CREATE TABLE notifications (
    id          uuid        PRIMARY KEY,
    event_id    uuid        NOT NULL,
    kind        text        NOT NULL,
    subject_id  text        NOT NULL,
    body        text        NOT NULL,
    trace_id    text,
    created_at  timestamptz NOT NULL,
    UNIQUE (event_id, kind)
);
CREATE INDEX ix_notifications_subject ON notifications (subject_id);
