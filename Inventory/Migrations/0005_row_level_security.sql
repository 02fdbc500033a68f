-- Row-level security, the second wall behind the tenant filters in the code (ADR 0011). What a user's request
-- reads or writes runs as inventory_app with the user's tenant in app.tenant_id, both set for its transaction
-- only; the policies below then hide and refuse every other tenant's rows, whatever the statement says.
--
-- Security is enabled but not forced: the service's own database user owns these tables and is not bound by them.
-- It does the work that spans tenants by design (reservations for Orders, the expiry sweep, migrations).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'inventory_app') THEN
        CREATE ROLE inventory_app NOLOGIN;
    END IF;
END
$$;
GRANT inventory_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO inventory_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO inventory_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO inventory_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO inventory_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO inventory_app;

-- The same policy on every table that carries a tenant.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['products', 'stock', 'stock_adjustments', 'reservations'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($policy$
            CREATE POLICY %I ON %I TO inventory_app
                USING (tenant_id = current_setting('app.tenant_id', true))
                WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
            $policy$, t || '_tenant_isolation', t);
    END LOOP;
END
$$;

-- An item has no tenant of its own: it is visible with its reservation (which the policy above already filters).
ALTER TABLE reservation_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY reservation_items_tenant_isolation ON reservation_items TO inventory_app
    USING (EXISTS (SELECT 1 FROM reservations r WHERE r.id = reservation_id))
    WITH CHECK (EXISTS (SELECT 1 FROM reservations r WHERE r.id = reservation_id));
