-- Logins whose password is being checked right now. They reserve room under the failure limits (so
-- concurrent guesses cannot slip under them) without counting as failures: a correct login leaves no
-- trace, a wrong one moves to login_failures. UNLOGGED: after a crash the table is emptied, which is
-- right (nothing is in flight any more); rows a killed process leaves behind stop counting after the
-- throttle's attempt timeout and are purged.
CREATE UNLOGGED TABLE login_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_key bytea NOT NULL CHECK (octet_length(account_key) = 32),
    client_ip   inet NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_account_idx ON login_attempts (account_key, started_at);
CREATE INDEX login_attempts_client_idx ON login_attempts (client_ip, started_at);
