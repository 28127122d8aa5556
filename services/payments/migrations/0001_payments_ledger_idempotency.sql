-- Payments: charges (captured or declined), refunds, a double-entry ledger and idempotency keys.
-- No column can hold a card number or CVC: only brand, last4, expiry and a keyed fingerprint.

CREATE TABLE payments (
    id               uuid PRIMARY KEY,
    order_id         uuid NOT NULL,
    user_id          uuid NOT NULL,
    status           text NOT NULL CHECK (status IN ('captured', 'declined')),
    decline_reason   text CHECK (decline_reason IN ('card_declined', 'insufficient_funds')),
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    refunded_cents   bigint NOT NULL DEFAULT 0,
    currency         char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    card_brand       text NOT NULL CHECK (length(card_brand) <= 20),
    card_last4       char(4) NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    card_exp_month   smallint NOT NULL CHECK (card_exp_month BETWEEN 1 AND 12),
    card_exp_year    smallint NOT NULL CHECK (card_exp_year BETWEEN 1000 AND 9999),
    card_fingerprint char(64) NOT NULL CHECK (card_fingerprint ~ '^[0-9a-f]{64}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refunds_within_capture CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    CONSTRAINT declined_has_reason CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
    CONSTRAINT declined_never_refunded CHECK (status = 'captured' OR refunded_cents = 0)
);
CREATE INDEX payments_order_idx ON payments (order_id, created_at);

CREATE TABLE refunds (
    id           uuid PRIMARY KEY,
    payment_id   uuid NOT NULL REFERENCES payments (id),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id);

-- Double-entry ledger. One transaction per capture or refund; its entries must sum to zero, checked by
-- a deferred constraint trigger at commit (so the legs may be inserted one by one). Append-only.
CREATE TABLE ledger_transactions (
    id         uuid PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments (id),
    refund_id  uuid REFERENCES refunds (id),
    kind       text NOT NULL CHECK (kind IN ('capture', 'refund')),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refund_kind_has_refund CHECK ((kind = 'refund') = (refund_id IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_one_capture_per_payment ON ledger_transactions (payment_id) WHERE kind = 'capture';
CREATE UNIQUE INDEX ledger_one_txn_per_refund ON ledger_transactions (refund_id) WHERE refund_id IS NOT NULL;

CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    payment_id     uuid NOT NULL REFERENCES payments (id),
    account        text NOT NULL CHECK (account IN ('customer_funds', 'merchant_revenue', 'refunds')),
    amount_cents   bigint NOT NULL CHECK (amount_cents <> 0),
    currency       char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_txn_idx ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_payment_idx ON ledger_entries (payment_id);

CREATE FUNCTION ledger_assert_balanced(txn uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    legs integer;
    total numeric;
    currencies integer;
BEGIN
    SELECT count(*), coalesce(sum(amount_cents), 0), count(DISTINCT currency)
      INTO legs, total, currencies
      FROM ledger_entries WHERE transaction_id = txn;
    IF legs < 2 OR total <> 0 OR currencies <> 1 THEN
        RAISE EXCEPTION 'ledger transaction % is not balanced (legs %, sum %, currencies %)',
            txn, legs, total, currencies USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION ledger_entries_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.transaction_id);
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_transactions_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.id);
    RETURN NULL;
END $$;

-- Checked at COMMIT (deferred), so the legs may be inserted one by one within a transaction.
CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_check();
-- A transaction row with no entries at all would escape the trigger above: check it too.
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced
    AFTER INSERT ON ledger_transactions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transactions_check();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Idempotency keys, scoped per caller. The first request inserts the row (in its own transaction: that
-- marks it in flight); the final response is stored in the same transaction as the effect.
CREATE TABLE idempotency_keys (
    caller        text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  char(64) NOT NULL,
    claim         uuid NOT NULL,
    status_code   smallint,
    response_body json,  -- json, not jsonb: keeps key order, so a replay is byte-identical
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (caller, key),
    CONSTRAINT complete_together CHECK ((status_code IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
