-- Orders, their lines (a price snapshot from the reservation), the state machine enforced by the
-- database, and per-user idempotency keys. No column can hold card data.

CREATE TABLE orders (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'reserved', 'paid', 'confirmed', 'shipped',
                                                   'cancelling', 'cancelled', 'rejected', 'payment_failed',
                                                   'failed')),
    total_cents    bigint CHECK (total_cents >= 0),
    currency       char(3) CHECK (currency ~ '^[A-Z]{3}$'),
    payment_id     uuid,
    failure_reason text CHECK (length(failure_reason) <= 200),
    -- A failed order whose compensation must be re-checked once later (a charge or reservation that
    -- reached the peer after we gave up on it is undone by the recovery loop's settle pass).
    needs_settle   boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT priced_once_reserved CHECK (
        status IN ('pending', 'rejected', 'failed') OR (total_cents IS NOT NULL AND currency IS NOT NULL)),
    CONSTRAINT paid_has_payment CHECK (
        status NOT IN ('paid', 'confirmed', 'shipped', 'cancelling', 'cancelled') OR payment_id IS NOT NULL)
);
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_unfinished_idx ON orders (updated_at)
    WHERE status IN ('pending', 'reserved', 'paid', 'cancelling') OR needs_settle;

CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id),
    line             smallint NOT NULL CHECK (line >= 0),
    product_id       uuid NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    name             text,
    unit_price_cents bigint CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, product_id)
);

-- The legal transitions. The trigger below refuses every other change of status, whatever the code or
-- the concurrency; the code additionally moves with UPDATE ... WHERE status = <expected>.
CREATE TABLE order_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO order_transitions (from_status, to_status) VALUES
    ('pending', 'reserved'), ('pending', 'rejected'), ('pending', 'failed'),
    ('reserved', 'paid'), ('reserved', 'payment_failed'), ('reserved', 'failed'),
    ('paid', 'confirmed'), ('paid', 'failed'),
    ('confirmed', 'shipped'), ('confirmed', 'cancelling'),
    ('cancelling', 'cancelled');

CREATE FUNCTION orders_guard_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'an order starts as pending, not %', NEW.status USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM order_transitions WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal order transition % -> %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.updated_at := now();
    END IF;
    IF NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'an order''s owner and creation time never change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER orders_guard_status BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_guard_status();

CREATE FUNCTION orders_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'orders are never deleted' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER orders_no_delete BEFORE DELETE ON orders FOR EACH ROW EXECUTE FUNCTION orders_no_delete();

-- Idempotency-Key per user. Inserted together with the pending order (one transaction), so every key
-- in flight has an order the recovery loop will finish; the final response is stored with the final state.
CREATE TABLE idempotency_keys (
    user_id       uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  char(64) NOT NULL,
    order_id      uuid NOT NULL REFERENCES orders (id),
    status_code   smallint,
    response_body json,  -- json, not jsonb: keeps key order, so a replay is byte-identical
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (user_id, key),
    CONSTRAINT complete_together CHECK ((status_code IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_order_idx ON idempotency_keys (order_id);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
