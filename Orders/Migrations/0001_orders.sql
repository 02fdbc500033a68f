CREATE TABLE orders (
    id          uuid          PRIMARY KEY,
    status      text          NOT NULL,
    total       numeric(12,2) NOT NULL CHECK (total >= 0),
    currency    char(3)       NOT NULL,
    version     bigint        NOT NULL,
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL
);

CREATE TABLE order_items (
    order_id    uuid          NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  uuid          NOT NULL,
    quantity    integer       NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price  numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);
