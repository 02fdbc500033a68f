-- A stored answer is tenant data (a product, a stock level), and inventory_app completes keyed requests' claims in
-- the tenant's scope: the second wall covers those rows too (ADR 0011). A key's scope is "<tenant>:<user>", and a
-- user id has no ':', so the tenant is everything before the last one. The idempotency middleware claims and replays
-- keys as the tables' owner, which the policy does not bind, as for the other tables.
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant_isolation ON idempotency_keys TO inventory_app
    USING (regexp_replace(scope, ':[^:]*$', '') = current_setting('app.tenant_id', true))
    WITH CHECK (regexp_replace(scope, ':[^:]*$', '') = current_setting('app.tenant_id', true));
