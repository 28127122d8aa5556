"""Orders: placing an order as a saga (reserve stock, charge, commit, confirm), cancel with refund and
stock return, ship; idempotent per Idempotency-Key, with a recovery loop that finishes what a crash left."""
