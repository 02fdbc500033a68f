-- migrate: no-transaction
-- What an adjustment left and the stock version it made are never negative, in the database too (0006 added the
-- columns without a CHECK). Each CHECK is added NOT VALID (a moment's lock, no scan) and then validated, which
-- reads the table under a lock that lets writes go on. Dropped first, so a run that failed half-way can run again.
ALTER TABLE stock_adjustments DROP CONSTRAINT IF EXISTS ck_stock_adjustments_quantity_after,
    DROP CONSTRAINT IF EXISTS ck_stock_adjustments_stock_version;
ALTER TABLE stock_adjustments ADD CONSTRAINT ck_stock_adjustments_quantity_after CHECK (quantity_after >= 0) NOT VALID,
    ADD CONSTRAINT ck_stock_adjustments_stock_version CHECK (stock_version >= 1) NOT VALID;
ALTER TABLE stock_adjustments VALIDATE CONSTRAINT ck_stock_adjustments_quantity_after;
ALTER TABLE stock_adjustments VALIDATE CONSTRAINT ck_stock_adjustments_stock_version;
