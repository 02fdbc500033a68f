-- Orders belong to a tenant and a customer; PostgreSQL enforces the tenant boundary itself (row-level security).
ALTER TABLE orders ADD COLUMN tenant_id text NOT NULL DEFAULT '', ADD COLUMN customer_id text NOT NULL DEFAULT '';
ALTER TABLE orders ALTER COLUMN tenant_id DROP DEFAULT, ALTER COLUMN customer_id DROP DEFAULT;
CREATE INDEX ix_orders_tenant_customer ON orders (tenant_id, customer_id, created_at DESC);

-- The service works as this role, which does not own the tables, so the policies apply to it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders_app') THEN
        CREATE ROLE orders_app NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO orders_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orders_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO orders_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orders_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO orders_app;

ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders FORCE ROW LEVEL SECURITY;
CREATE POLICY orders_tenant_isolation ON orders
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE order_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_items FORCE ROW LEVEL SECURITY;
CREATE POLICY order_items_tenant_isolation ON order_items
    USING (EXISTS (SELECT 1 FROM orders o WHERE o.id = order_id))
    WITH CHECK (EXISTS (SELECT 1 FROM orders o WHERE o.id = order_id));
