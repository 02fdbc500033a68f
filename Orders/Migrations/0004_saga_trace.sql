-- The saga carries on the work of the request that placed (or cancelled) the order: its correlation id and trace
-- are kept with the saga, so the saga's calls, events and logs join that request's trace. Empty for sagas written
-- before (they start traces of their own, as before).
ALTER TABLE order_sagas ADD COLUMN correlation_id text, ADD COLUMN traceparent text;
