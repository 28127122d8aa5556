-- Catalogue, stock, reservations and the change feed (transactional outbox).
-- Invariants live here, not only in Python: whatever the code does, stock can never go negative
-- and more can never be reserved than is on hand.

CREATE TABLE products (
    id              uuid PRIMARY KEY,
    sku             text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    category        text NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
    price_cents     bigint NOT NULL CHECK (price_cents >= 1),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock_on_hand   integer NOT NULL DEFAULT 0,
    stock_reserved  integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT stock_never_negative CHECK (stock_reserved >= 0 AND stock_reserved <= stock_on_hand)
);

-- A SKU is unique among live products; a deleted product's SKU may be reused.
CREATE UNIQUE INDEX products_sku_live ON products (sku) WHERE deleted_at IS NULL;
-- Keyset pagination in (created_at, id) order, optionally within a category.
CREATE INDEX products_live_order ON products (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_live_category_order ON products (category, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE reservations (
    order_id    uuid PRIMARY KEY,
    status      text NOT NULL CHECK (status IN ('reserved', 'committed', 'released', 'returned')),
    caller      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservation_items (
    order_id          uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    line_no           smallint NOT NULL CHECK (line_no >= 0),
    product_id        uuid NOT NULL REFERENCES products (id),
    quantity          integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    -- A snapshot of the product at reservation time (orders keep these prices).
    name              text NOT NULL,
    unit_price_cents  bigint NOT NULL,
    currency          char(3) NOT NULL,
    PRIMARY KEY (order_id, product_id),
    UNIQUE (order_id, line_no)
);
CREATE INDEX reservation_items_product ON reservation_items (product_id);

-- The change feed. Every product create/update/delete inserts one row in the same transaction, after
-- taking a transaction-scoped advisory lock, and numbers it max(seq)+1: writers are serialised, so seq is
-- gapless and seq order is commit order, and a reader paging with `seq > after` never skips a row.
CREATE TABLE product_changes (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    product_id  uuid NOT NULL,
    op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
    product     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((op = 'upsert') = (product IS NOT NULL))
);
