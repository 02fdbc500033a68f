-- The order's own state grows the saga's facts and a status timeline.
ALTER TABLE orders
    ADD COLUMN status_reason       text,
    ADD COLUMN reservation_id      uuid,
    ADD COLUMN payment_id          text,
    ADD COLUMN refunded            boolean NOT NULL DEFAULT false,
    ADD COLUMN cancellation_reason text;
CREATE INDEX ix_orders_tenant_status ON orders (tenant_id, status, created_at DESC);

CREATE TABLE order_status_history (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status    text        NOT NULL,
    reason    text,
    at        timestamptz NOT NULL
);
CREATE INDEX ix_order_status_history_order ON order_status_history (order_id, id);
ALTER TABLE order_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_status_history FORCE ROW LEVEL SECURITY;
CREATE POLICY order_status_history_tenant_isolation ON order_status_history
    USING (EXISTS (SELECT 1 FROM orders o WHERE o.id = order_id))
    WITH CHECK (EXISTS (SELECT 1 FROM orders o WHERE o.id = order_id));
INSERT INTO order_status_history (order_id, status, at) SELECT id, status, created_at FROM orders;

-- Saga bookkeeping: which step an order's saga is at, when to try it next, and who holds it. No customer
-- data here, so no row-level security: the workers claim across tenants, then act as the order's tenant.
CREATE TABLE order_sagas (
    order_id         uuid        PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    tenant_id        text        NOT NULL,
    step             text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_token      uuid,
    lease_until      timestamptz,
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_order_sagas_due ON order_sagas (next_attempt_at) WHERE step <> 'Done';
INSERT INTO order_sagas (order_id, tenant_id, step) SELECT id, tenant_id, 'Reserve' FROM orders WHERE status = 'Pending';

-- The fake payment provider's ledger (a real provider keeps this on its side). One row per order: the
-- order id is the idempotency key, and a void before an authorization blocks that authorization.
CREATE TABLE fake_payments (
    order_id    uuid          PRIMARY KEY,
    payment_id  text          NOT NULL,
    amount      numeric(12,2) NOT NULL,
    currency    char(3)       NOT NULL,
    status      text          NOT NULL CHECK (status IN ('Authorized', 'Declined', 'Refunded', 'Voided')),
    reason      text,
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL
);
