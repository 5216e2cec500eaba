-- The scheduler's tables: job bookkeeping, direct charges (hybrid fallback), reminders and the outbox.

-- Last run of each job, for health (scheduler lag) and operators.
CREATE TABLE job_runs (
    job_name           text PRIMARY KEY,
    last_started_at    timestamptz,
    last_succeeded_at  timestamptz,
    last_error         text,
    last_duration_ms   integer,
    runs               bigint NOT NULL DEFAULT 0
);

-- Vendors choose whether a session may outlive its permission, paying the rest directly on chain.
ALTER TABLE vendors ADD COLUMN direct_charge_grace_seconds integer NOT NULL DEFAULT 0
    CHECK (direct_charge_grace_seconds BETWEEN 0 AND 86400);

-- Optional receiver of the permission's reminders (signed webhooks) and the end of its payment window.
ALTER TABLE permissions ADD COLUMN notify_url text;
ALTER TABLE permissions ADD COLUMN payment_due_at timestamptz;
ALTER TABLE permissions ADD COLUMN exhausted_at timestamptz;

-- When a session started running on credit (its permission ran dry) and the grace it has.
ALTER TABLE sessions ADD COLUMN exhausted_at timestamptz;

-- Money owed on chain by a session whose permission ran out while the vendor allowed it to go on.
CREATE TABLE direct_charges (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id       uuid NOT NULL UNIQUE REFERENCES sessions (id),
    permission_id    uuid NOT NULL REFERENCES permissions (id),
    funding_source   text NOT NULL,
    asset            text NOT NULL,
    amount           numeric(78, 0) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    status           text NOT NULL DEFAULT 'accruing'
                     CHECK (status IN ('accruing', 'pending_payment', 'paid', 'waived')),
    payment_address  text UNIQUE,
    payment_locator  text,
    paid_amount      numeric(78, 0) NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    finalized_at     timestamptz,
    paid_at          timestamptz
);
CREATE INDEX direct_charges_open ON direct_charges (status) WHERE status IN ('accruing', 'pending_payment');
CREATE INDEX direct_charges_permission ON direct_charges (permission_id);

-- A payment funds a permission or a direct charge, never both.
ALTER TABLE payments ADD COLUMN direct_charge_id uuid REFERENCES direct_charges (id);
ALTER TABLE payments ADD CONSTRAINT payments_one_owner
    CHECK (permission_id IS NULL OR direct_charge_id IS NULL);
CREATE INDEX payments_direct_charge ON payments (direct_charge_id) WHERE direct_charge_id IS NOT NULL;

-- Messages to deliver (reminders, vendor webhooks), sent and retried by the scheduler.
-- `dedupe_key` makes each message exist once however many replicas try to enqueue it.
CREATE TABLE outbox (
    id                bigserial PRIMARY KEY,
    kind              text NOT NULL,
    event_type        text NOT NULL,
    dedupe_key        text NOT NULL UNIQUE,
    permission_id     uuid REFERENCES permissions (id),
    vendor_id         uuid REFERENCES vendors (id),
    target_url        text NOT NULL,
    payload           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    locked_until      timestamptz,
    last_error        text,
    last_status_code  integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

-- Each reminder is sent at most once per permission.
CREATE TABLE permission_reminders (
    permission_id  uuid NOT NULL REFERENCES permissions (id),
    kind           text NOT NULL,
    outbox_id      bigint REFERENCES outbox (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (permission_id, kind)
);

-- The billing tick walks active sessions by permission.
CREATE INDEX sessions_active_permission ON sessions (permission_id) WHERE status = 'active';

-- Every tick rewrites each active session and permission row; free space on each page lets PostgreSQL do that
-- as heap-only (HOT) updates, without touching any index.
ALTER TABLE sessions SET (fillfactor = 70);
ALTER TABLE permissions SET (fillfactor = 80);
