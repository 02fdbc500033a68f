-- A notification is the tenant's business data like any other row (DESIGN.md, Tenancy): it carries the tenant of the
-- event it was made from. Rows made before this have none.
ALTER TABLE notifications ADD COLUMN tenant_id text;
