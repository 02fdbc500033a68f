-- migrate: no-transaction
-- Product names are listed and searched as people read them, in any alphabet. The database's own collation is "C"
-- (byte order, ASCII-only case folding): "Zebra" came before "apple", "éclair" after "zucchini", and a search for
-- "ÉCLAIR" missed "éclair". The list now orders and searches names under ICU's root collation ("und-x-icu", the
-- same order for every language, ties broken by code point so it stays a total order for the cursor), and this
-- index serves that order. Built without blocking writes; the old index goes the same way once the new one is valid.
DROP INDEX CONCURRENTLY IF EXISTS ix_products_tenant_active_name_icu;
CREATE INDEX CONCURRENTLY ix_products_tenant_active_name_icu
    ON products (tenant_id, active, name COLLATE "und-x-icu") WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS ix_products_tenant_active_name;
