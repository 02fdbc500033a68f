-- Inventory's events are written by the database itself, in the transaction that changes the stock or the
-- reservation: every path (the one-statement hot path, multi-item reservations, confirm, release, expiry,
-- admin adjustments) is covered by construction, and none can change state without its event.

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

-- Reservation lifecycle. Deferred to commit, so a reservation's items (written after its row) are there.
CREATE FUNCTION reservation_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current reservations%ROWTYPE;
    items jsonb;
BEGIN
    SELECT * INTO current FROM reservations WHERE id = NEW.id;
    IF current.closed OR (TG_OP = 'UPDATE' AND current.status = OLD.status) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('productId', product_id, 'quantity', quantity) ORDER BY product_id), '[]'::jsonb)
    INTO items FROM reservation_items WHERE reservation_id = NEW.id;
    IF TG_OP = 'INSERT' THEN
        PERFORM inventory_event('inventory.reserved', current.tenant_id, current.id::text, 1,
            jsonb_build_object('reservationId', current.id, 'orderId', current.order_id, 'items', items, 'expiresAt', current.expires_at));
    ELSIF current.status = 'Confirmed' THEN
        PERFORM inventory_event('inventory.confirmed', current.tenant_id, current.id::text, 2,
            jsonb_build_object('reservationId', current.id, 'orderId', current.order_id, 'items', items));
    ELSIF current.status IN ('Released', 'Expired') THEN
        PERFORM inventory_event('inventory.released', current.tenant_id, current.id::text,
            CASE WHEN OLD.status = 'Confirmed' THEN 3 ELSE 2 END,
            jsonb_build_object('reservationId', current.id, 'orderId', current.order_id, 'items', items,
                               'reason', CASE WHEN current.status = 'Expired' THEN 'expired' ELSE coalesce(current.release_reason, 'released') END));
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER reservation_events AFTER INSERT OR UPDATE OF status ON reservations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION reservation_event();
