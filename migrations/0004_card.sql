-- Card credits (Stripe): processed webhook events, what Stripe told us about each card permission's payment,
-- the charges' refund and dispute facts, and the refunds we asked Stripe for. Additive only: balances still move
-- through the append-only ledger alone; a refund larger than the balance becomes a debt here, never a negative
-- balance.

-- Each Stripe event id is processed once: the primary key settles concurrent duplicate deliveries.
CREATE TABLE stripe_events (
    event_id        text PRIMARY KEY,
    event_type      text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('applied', 'ignored')),
    permission_id   uuid REFERENCES permissions (id),
    stripe_created  timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_permission ON stripe_events (permission_id) WHERE permission_id IS NOT NULL;

-- Card-only state of a permission (created by the first event or refund that needs it). Its payment is the
-- `payments` row with funding_source 'card' and txid = the Stripe PaymentIntent id.
CREATE TABLE card_permissions (
    permission_id    uuid PRIMARY KEY REFERENCES permissions (id),
    unfunded_reason  text CHECK (unfunded_reason IN ('payment_failed', 'checkout_expired')),
    -- Of the charge's refunded amount, how much is already accounted for (our own refunds, reversals and debt).
    refund_covered   numeric(78, 0) NOT NULL DEFAULT 0 CHECK (refund_covered >= 0),
    -- What a refund took beyond the balance that was left: owed by the user, the permission is suspended.
    debt             numeric(78, 0) NOT NULL DEFAULT 0 CHECK (debt >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Facts from charge events, keyed by payment intent, kept even when they arrive before the checkout's own event.
CREATE TABLE stripe_charges (
    payment_intent   text PRIMARY KEY,
    charge_id        text,
    amount_refunded  numeric(78, 0) NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    dispute_id       text,
    disputed_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The closing refund of a card permission's unused balance (one per permission; amount 0 closes without Stripe).
CREATE TABLE card_refunds (
    id                bigserial PRIMARY KEY,
    permission_id     uuid NOT NULL UNIQUE REFERENCES permissions (id),
    amount            numeric(78, 0) NOT NULL CHECK (amount >= 0),
    status            text NOT NULL CHECK (status IN ('requested', 'submitted', 'not_needed')),
    stripe_refund_id  text UNIQUE,
    stripe_status     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
