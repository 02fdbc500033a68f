-- migrate: no-transaction
-- The stock statistics count a tenant's Active reservations. The only index on them was by expiry, which holds every
-- tenant's, so each count read all of them. Built without blocking reservations.
DROP INDEX CONCURRENTLY IF EXISTS ix_reservations_tenant_active;
CREATE INDEX CONCURRENTLY ix_reservations_tenant_active ON reservations (tenant_id) WHERE status = 'Active';
