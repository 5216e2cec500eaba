-- Core schema: vendors, spending permissions, payments, sessions, the append-only ledger, idempotency keys,
-- the permission audit trail and the seed's operator views.
-- Every amount is numeric(78,0): an integer count of the asset's smallest unit (zatoshi, wei, cents);
-- 78 digits hold any uint256. No float or real column exists anywhere.

CREATE TABLE vendors (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 of the key (keys are 256-bit random, so a fast hash is enough).
CREATE TABLE vendor_api_keys (
    id          bigserial PRIMARY KEY,
    vendor_id   uuid NOT NULL REFERENCES vendors (id),
    key_hash    bytea NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX vendor_api_keys_vendor ON vendor_api_keys (vendor_id);

CREATE TABLE permissions (
    id                   uuid PRIMARY KEY,
    funding_source       text NOT NULL CHECK (funding_source IN ('zcash', 'ethereum', 'card')),
    asset                text NOT NULL,
    asset_decimals       smallint NOT NULL CHECK (asset_decimals BETWEEN 0 AND 36),
    user_wallet_address  text NOT NULL,
    token_hash           bytea NOT NULL UNIQUE,
    approved_amount      numeric(78, 0) NOT NULL CHECK (approved_amount > 0),
    rate_per_hour        numeric(78, 0) NOT NULL CHECK (rate_per_hour > 0),
    duration_days        integer NOT NULL CHECK (duration_days > 0),
    status               text NOT NULL DEFAULT 'pending_payment'
                         CHECK (status IN ('pending_payment', 'active', 'exhausted', 'expired', 'suspended', 'closed')),
    balance              numeric(78, 0) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    funded_amount        numeric(78, 0) NOT NULL DEFAULT 0 CHECK (funded_amount >= 0),
    charged_amount       numeric(78, 0) NOT NULL DEFAULT 0 CHECK (charged_amount >= 0),
    payment_address      text UNIQUE,
    payment_locator      text,
    checkout_url         text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    activated_at         timestamptz,
    expires_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX permissions_wallet ON permissions (user_wallet_address, created_at DESC);
CREATE INDEX permissions_status ON permissions (status, expires_at);

-- Money seen on a funding source. One (source, txid, output) is one row and belongs to one permission only.
CREATE TABLE payments (
    id              bigserial PRIMARY KEY,
    funding_source  text NOT NULL,
    txid            text NOT NULL,
    output_index    integer NOT NULL,
    asset           text NOT NULL,
    amount          numeric(78, 0) NOT NULL CHECK (amount > 0),
    permission_id   uuid REFERENCES permissions (id),
    address         text,
    confirmations   integer NOT NULL,
    block_height    bigint,
    block_hash      text,
    memo            text,
    status          text NOT NULL DEFAULT 'seen' CHECK (status IN ('seen', 'credited', 'late', 'orphaned')),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    credited_at     timestamptz,
    UNIQUE (funding_source, txid, output_index)
);
CREATE INDEX payments_permission ON payments (permission_id);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    code_hash       bytea NOT NULL UNIQUE,
    permission_id   uuid NOT NULL REFERENCES permissions (id),
    vendor_id       uuid NOT NULL REFERENCES vendors (id),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'ended', 'exhausted', 'pending_payment', 'confirmed')),
    rate_per_hour   numeric(78, 0) NOT NULL CHECK (rate_per_hour > 0),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    charged_amount  numeric(78, 0) NOT NULL DEFAULT 0 CHECK (charged_amount >= 0),
    uncovered_amount numeric(78, 0) NOT NULL DEFAULT 0 CHECK (uncovered_amount >= 0),
    CHECK ((status = 'active') = (ended_at IS NULL))
);
CREATE INDEX sessions_permission ON sessions (permission_id);
CREATE INDEX sessions_vendor ON sessions (vendor_id, started_at DESC);
CREATE INDEX sessions_active ON sessions (started_at) WHERE status = 'active';

-- The append-only ledger: one row per balance change, signed amount, with the balance after it.
CREATE TABLE ledger_entries (
    id             bigserial PRIMARY KEY,
    permission_id  uuid NOT NULL REFERENCES permissions (id),
    kind           text NOT NULL CHECK (kind IN ('funding', 'charge', 'refund', 'adjustment', 'reversal')),
    amount         numeric(78, 0) NOT NULL CHECK (amount <> 0),
    balance_after  numeric(78, 0) NOT NULL CHECK (balance_after >= 0),
    session_id     uuid REFERENCES sessions (id),
    payment_id     bigint REFERENCES payments (id),
    memo           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'funding' OR (amount > 0 AND payment_id IS NOT NULL)),
    CHECK (kind <> 'charge' OR (amount < 0 AND session_id IS NOT NULL))
);
CREATE INDEX ledger_entries_permission ON ledger_entries (permission_id, id);
CREATE INDEX ledger_entries_session ON ledger_entries (session_id) WHERE session_id IS NOT NULL;
-- A payment is credited once, whatever retries or replicas do.
CREATE UNIQUE INDEX ledger_entries_one_funding_per_payment ON ledger_entries (payment_id) WHERE kind = 'funding';

CREATE FUNCTION refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- Idempotency-Key records: the first answer to (principal, key) is replayed for the same request.
CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    status_code    integer,
    response_body  text,
    locked_until   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Every change of a permission, written by a trigger so no code path can forget it.
CREATE TABLE permission_changes (
    id             bigserial PRIMARY KEY,
    permission_id  uuid NOT NULL REFERENCES permissions (id),
    action         text NOT NULL,
    old_status     text,
    new_status     text NOT NULL,
    old_balance    numeric(78, 0),
    new_balance    numeric(78, 0) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX permission_changes_permission ON permission_changes (permission_id, created_at DESC);

CREATE FUNCTION record_permission_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO permission_changes (permission_id, action, new_status, new_balance)
        VALUES (NEW.id, 'created', NEW.status, NEW.balance);
    ELSIF NEW.status IS DISTINCT FROM OLD.status OR NEW.balance IS DISTINCT FROM OLD.balance
          OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
        INSERT INTO permission_changes (permission_id, action, old_status, new_status, old_balance, new_balance)
        VALUES (NEW.id,
                CASE WHEN NEW.status IS DISTINCT FROM OLD.status THEN 'status_changed'
                     WHEN NEW.balance IS DISTINCT FROM OLD.balance THEN 'balance_changed'
                     ELSE 'updated' END,
                OLD.status, NEW.status, OLD.balance, NEW.balance);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER permissions_audit AFTER INSERT OR UPDATE ON permissions
    FOR EACH ROW EXECUTE FUNCTION record_permission_change();

-- Minor units as an exact decimal of the whole asset (for the operator views only; the API formats in Python).
CREATE FUNCTION to_major(units numeric, decimals smallint) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT round(units / (10::numeric ^ decimals), decimals) $$;

CREATE VIEW active_permissions_with_sessions AS
SELECT p.id AS permission_id,
       p.funding_source,
       p.asset,
       p.user_wallet_address,
       to_major(p.approved_amount, p.asset_decimals) AS approved_amount,
       to_major(p.balance, p.asset_decimals) AS remaining_amount,
       to_major(p.rate_per_hour, p.asset_decimals) AS rate_per_hour,
       trunc(p.balance / p.rate_per_hour, 6) AS remaining_hours,
       p.expires_at,
       count(s.id) AS active_sessions,
       min(s.started_at) AS oldest_session_started_at
FROM permissions p
LEFT JOIN sessions s ON s.permission_id = p.id AND s.status = 'active'
WHERE p.status = 'active'
GROUP BY p.id;

CREATE VIEW permission_statistics AS
SELECT p.asset,
       p.status,
       count(*) AS permissions,
       to_major(sum(p.approved_amount), min(p.asset_decimals)) AS approved_amount,
       to_major(sum(p.funded_amount), min(p.asset_decimals)) AS funded_amount,
       to_major(sum(p.balance), min(p.asset_decimals)) AS remaining_amount,
       to_major(sum(p.charged_amount), min(p.asset_decimals)) AS charged_amount,
       (SELECT count(*) FROM sessions s JOIN permissions q ON q.id = s.permission_id
         WHERE q.asset = p.asset AND q.status = p.status) AS sessions
FROM permissions p
GROUP BY p.asset, p.status;

CREATE VIEW permission_audit_log AS
SELECT c.id,
       c.permission_id,
       c.action,
       c.old_status,
       c.new_status,
       to_major(c.old_balance, p.asset_decimals) AS old_balance,
       to_major(c.new_balance, p.asset_decimals) AS new_balance,
       p.asset,
       p.user_wallet_address,
       c.created_at
FROM permission_changes c
JOIN permissions p ON p.id = c.permission_id;
