CREATE TABLE products (
    id              uuid          PRIMARY KEY,
    sku             text          NOT NULL UNIQUE,
    name            text          NOT NULL,
    description     text          NOT NULL DEFAULT '',
    price_amount    numeric(12,2) NOT NULL CHECK (price_amount >= 0),
    price_currency  char(3)       NOT NULL,
    active          boolean       NOT NULL DEFAULT true,
    version         bigint        NOT NULL DEFAULT 1,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX ix_products_active_name ON products (active, name);
