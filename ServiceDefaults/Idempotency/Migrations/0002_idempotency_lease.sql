-- A claim on a key is a lease: the attempt that holds it, and since when. A request still "in progress" after the
-- lease was cut off (its replica died); a retry may take the key over, and the old attempt can no longer complete it.
ALTER TABLE idempotency_keys
    ADD COLUMN attempt   uuid,
    ADD COLUMN locked_at timestamptz NOT NULL DEFAULT now();
