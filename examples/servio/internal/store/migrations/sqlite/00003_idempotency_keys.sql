-- +goose Up
-- Idempotency-Key records (POST /orders, PATCH /orders/{id}): claimed
-- before the write (status 0, owner and lease set), completed with the
-- response in the write's own transaction; kept 24 h.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    owner        TEXT,
    locked_until TEXT,
    status       INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
