-- migrate: no-transaction
-- Product names are listed and searched as people read them, in any alphabet. The database's own collation is "C"
-- (byte order, ASCII-only case folding): "Zebra" came before "apple", "éclair" after "zucchini", and a search for
-- "ÉCLAIR" missed "éclair". The list now orders and searches names under ICU's root collation ("und-x-icu", the
-- same order for every language, ties broken by code point), then by id, and these indexes hand pages out in that
-- order: one for the whole list, which the index by (tenant, active, name) could not serve (every page read and
-- sorted the tenant's whole catalog), and one for a list of only the active or only the inactive products.
-- Built without blocking writes. The old index by (tenant, active, name) in byte order stays while a replica of the
-- version before may still run and list by it (expand, then contract: ADR 0002); a later release drops it.
DROP INDEX CONCURRENTLY IF EXISTS ix_products_tenant_name_icu;
CREATE INDEX CONCURRENTLY ix_products_tenant_name_icu
    ON products (tenant_id, name COLLATE "und-x-icu", id) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS ix_products_tenant_active_name_icu;
CREATE INDEX CONCURRENTLY ix_products_tenant_active_name_icu
    ON products (tenant_id, active, name COLLATE "und-x-icu", id) WHERE deleted_at IS NULL;
