-- Inventory's events go through the outbox in the transaction that makes the change. Two kinds are written by
-- the database itself, because many code paths (or a set-wise sweep) make them: stock crossing zero (reserve,
-- confirm, release, expiry, admin adjustments) and reservation expiry.

-- Why a reservation was released, and "closed" reservations: an order that was cancelled or failed before
-- its reservation arrived leaves a marker, so a late reservation for it is refused instead of holding stock.
ALTER TABLE reservations ADD COLUMN release_reason text;
ALTER TABLE reservations ADD COLUMN closed boolean NOT NULL DEFAULT false;

CREATE FUNCTION inventory_event(event_type text, tenant text, aggregate_id text, aggregate_version bigint, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id uuid := gen_random_uuid();
BEGIN
    INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, next_attempt_at)
    VALUES (event_id, 'inventory.events', event_type, jsonb_build_object(
        'eventId', event_id,
        'eventType', event_type,
        'eventVersion', 1,
        'occurredAt', to_jsonb(clock_timestamp()),
        'tenantId', tenant,
        'aggregateId', aggregate_id,
        'aggregateVersion', aggregate_version,
        'correlationId', NULLIF(current_setting('app.correlation_id', true), ''),
        'traceParent', NULLIF(current_setting('app.traceparent', true), ''),
        'traceState', NULL,
        'data', data), now(), now());
END
$$;

-- Stock crossing zero: depleted when the last unit is taken, replenished when units come back.
CREATE FUNCTION stock_level_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_event(
        CASE WHEN NEW.quantity - NEW.reserved = 0 THEN 'inventory.stock_depleted' ELSE 'inventory.stock_replenished' END,
        NEW.tenant_id, NEW.product_id::text, NEW.version,
        jsonb_build_object('productId', NEW.product_id, 'quantity', NEW.quantity, 'reserved', NEW.reserved,
                           'available', NEW.quantity - NEW.reserved));
    RETURN NULL;
END
$$;
CREATE TRIGGER stock_level_events AFTER UPDATE ON stock
    FOR EACH ROW WHEN ((OLD.quantity - OLD.reserved = 0) IS DISTINCT FROM (NEW.quantity - NEW.reserved = 0))
    EXECUTE FUNCTION stock_level_event();

-- Expiry is the one reservation change made set-wise by the sweeper; its event is written here, row by row.
-- (Reserved, confirmed and released events are written by the service in the statement or transaction that
-- makes the change: see Reservations/InventoryEvents.cs.)
CREATE FUNCTION reservation_expired_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_event('inventory.released', NEW.tenant_id, NEW.id::text, 2,
        jsonb_build_object('reservationId', NEW.id, 'orderId', NEW.order_id, 'reason', 'expired',
            'items', (SELECT coalesce(jsonb_agg(jsonb_build_object('productId', product_id, 'quantity', quantity) ORDER BY product_id), '[]'::jsonb)
                      FROM reservation_items WHERE reservation_id = NEW.id)));
    RETURN NULL;
END
$$;
CREATE TRIGGER reservation_expired_events AFTER UPDATE OF status ON reservations
    FOR EACH ROW WHEN (NEW.status = 'Expired' AND OLD.status IS DISTINCT FROM 'Expired')
    EXECUTE FUNCTION reservation_expired_event();
