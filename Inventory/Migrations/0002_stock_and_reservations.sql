-- Products belong to a tenant (SKUs are unique per tenant) and are deleted softly.
ALTER TABLE products ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo';
ALTER TABLE products ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE products DROP CONSTRAINT products_sku_key;
ALTER TABLE products ADD CONSTRAINT uq_products_tenant_sku UNIQUE (tenant_id, sku);
ALTER TABLE products ADD COLUMN deleted_at timestamptz;
DROP INDEX ix_products_active_name;
CREATE INDEX ix_products_tenant_active_name ON products (tenant_id, active, name) WHERE deleted_at IS NULL;

-- One row per product. The invariants hold here as well as in the code: nothing negative, never more reserved than held.
CREATE TABLE stock (
    product_id  uuid        PRIMARY KEY REFERENCES products (id),
    tenant_id   text        NOT NULL,
    quantity    integer     NOT NULL CHECK (quantity >= 0),
    reserved    integer     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_stock_reserved_within_quantity CHECK (reserved <= quantity)
);
CREATE INDEX ix_stock_tenant_available ON stock (tenant_id, (quantity - reserved));

CREATE TABLE stock_adjustments (
    id          uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    product_id  uuid        NOT NULL REFERENCES products (id),
    delta       integer     NOT NULL CHECK (delta <> 0),
    reason      text        NOT NULL,
    actor       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_stock_adjustments_product ON stock_adjustments (product_id, created_at DESC);

CREATE TABLE reservations (
    id            uuid        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    order_id      uuid        NOT NULL UNIQUE,
    status        text        NOT NULL CHECK (status IN ('Active', 'Confirmed', 'Released', 'Expired')),
    request_hash  text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX ix_reservations_expiring ON reservations (expires_at) WHERE status = 'Active';

CREATE TABLE reservation_items (
    reservation_id  uuid    NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    product_id      uuid    NOT NULL REFERENCES products (id),
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    PRIMARY KEY (reservation_id, product_id)
);

INSERT INTO stock (product_id, tenant_id, quantity) SELECT id, tenant_id, 100 FROM products;
