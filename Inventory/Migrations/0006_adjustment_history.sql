-- An adjustment records the quantity it left and the stock version it made. The history of a product reads newest
-- first by that version, which follows the order the changes were applied in (created_at is when each transaction
-- began, before it waited for the stock row's lock). Adjustments recorded before this migration have neither, and
-- come last, by time. No CHECK is added: it would scan the table under an exclusive lock, and stock's own CHECKs
-- already keep the quantity from going below zero.
ALTER TABLE stock_adjustments ADD COLUMN quantity_after integer, ADD COLUMN stock_version bigint;
DROP INDEX ix_stock_adjustments_product;
CREATE INDEX ix_stock_adjustments_product ON stock_adjustments (product_id, stock_version DESC NULLS LAST, created_at DESC, id DESC);
