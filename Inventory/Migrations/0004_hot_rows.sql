-- A product bought by many at once is one stock row updated hundreds of times a second. Two things made each of
-- those updates cost more than the change itself:
--
-- 1. An index on (tenant_id, quantity - reserved) meant every reservation changed an indexed value, so no update
--    could be HOT: each one added entries to both of the table's indexes, and the hot row's dead versions piled up
--    in them. Low-stock reports now read the tenant's rows through an index on tenant_id alone (a column that never
--    changes), and the table leaves room on each page for a row's next versions.
DROP INDEX ix_stock_tenant_available;
CREATE INDEX ix_stock_tenant ON stock (tenant_id);
ALTER TABLE stock SET (fillfactor = 50);

-- 2. reservation_items.product_id referenced products, so every reservation took a KEY SHARE lock on the product
--    row: with many concurrent buyers of one product, PostgreSQL has to build a new multixact holding every
--    locker for each of them. The item now references the product's stock row, which the same statement has
--    just updated (and so already holds); stock.product_id still references products.
ALTER TABLE reservation_items DROP CONSTRAINT reservation_items_product_id_fkey;
ALTER TABLE reservation_items ADD CONSTRAINT reservation_items_stock_fkey FOREIGN KEY (product_id) REFERENCES stock (product_id);
