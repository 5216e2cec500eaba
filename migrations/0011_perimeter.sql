-- The perimeter (issue 10): idempotency answers encrypted, a checkout session funding once, and what retention
-- needs (billing/retention.py). The ledger, payments and the permission audit trail are never pruned.

-- Idempotency records no longer hold anything usable: the row is addressed by hashes, the answer is encrypted under
-- a key derived from the caller's own Idempotency-Key and credential (billing/idempotency.py). The old table held
-- first answers (tokens, session codes, API keys) in plain text, so it goes with everything in it.
DROP TABLE idempotency_keys;
CREATE TABLE idempotency_keys (
    scope         bytea NOT NULL,        -- SHA-256 of route and caller identity
    key_id        bytea NOT NULL,        -- HMAC-SHA256(Idempotency-Key, scope)
    request_hash  bytea NOT NULL,        -- HMAC of the request under a derived key
    status_code   integer,
    response      bytea,                 -- nonce || AES-256-GCM(answer)
    locked_until  timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key_id)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- A never-paid permission past its payment window and a grace is pruned: its token hash and URLs are dropped
-- (the token stops working), the row stays with its payment address and audit trail, so a late payment can still be
-- matched to it.
ALTER TABLE permissions ADD COLUMN pruned_at timestamptz;
ALTER TABLE permissions ALTER COLUMN token_hash DROP NOT NULL;
CREATE INDEX permissions_unpaid ON permissions (payment_due_at)
    WHERE status = 'expired' AND activated_at IS NULL AND pruned_at IS NULL;

-- Delivered and dead outbox messages are deleted after OUTBOX_RETENTION_DAYS; a reminder keeps the outcome of its
-- message.
ALTER TABLE permission_reminders ADD COLUMN delivery_status text, ADD COLUMN delivered_at timestamptz;
CREATE INDEX outbox_finished ON outbox (coalesce(delivered_at, next_attempt_at)) WHERE status <> 'pending';

-- A vendor key is named by the 4 characters after its `pgv_` (answers show `pgv_` + them): nothing in a dump looks
-- like a key.
UPDATE vendor_api_keys SET key_prefix = substr(key_prefix, 5) WHERE key_prefix LIKE 'pgv\_%';

-- A Checkout Session funds its permission once, whatever event ids or payment intents arrive for it.
CREATE TABLE card_checkout_payments (
    checkout_session_id  text PRIMARY KEY,
    permission_id        uuid NOT NULL UNIQUE REFERENCES permissions (id),
    payment_intent       text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
