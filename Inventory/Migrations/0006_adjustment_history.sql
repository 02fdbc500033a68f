-- An adjustment records the quantity it left, and the history of a product reads newest first through one index
-- (ties on the transaction time broken by id). Adjustments recorded before this migration have no quantity_after.
ALTER TABLE stock_adjustments ADD COLUMN quantity_after integer CHECK (quantity_after >= 0);
DROP INDEX ix_stock_adjustments_product;
CREATE INDEX ix_stock_adjustments_product ON stock_adjustments (product_id, created_at DESC, id DESC);
