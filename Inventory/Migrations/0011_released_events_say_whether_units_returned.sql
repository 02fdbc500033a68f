-- inventory.released says whether sold units went back on the shelf (a confirmed reservation released: a refund's
-- return) or reserved units became available again. An expiry only ever releases an active reservation.
CREATE OR REPLACE FUNCTION reservation_expired_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_event('inventory.released', NEW.tenant_id, NEW.id::text, 2,
        jsonb_build_object('reservationId', NEW.id, 'orderId', NEW.order_id, 'reason', 'expired', 'returned', false,
            'items', (SELECT coalesce(jsonb_agg(jsonb_build_object('productId', product_id, 'quantity', quantity) ORDER BY product_id), '[]'::jsonb)
                      FROM reservation_items WHERE reservation_id = NEW.id)));
    RETURN NULL;
END
$$;
