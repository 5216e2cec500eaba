-- Refunds of the unused balance of chain-funded permissions (issue 15), and fiat-priced permissions.
--
-- A refund is a payout: money leaving the gateway for a permission's wallet, one per permission. Zcash payouts are
-- sent by the gateway from its service account (`gateway_send`); Ethereum payouts are paid by the operator from
-- their own wallet (`operator_payout`: the gateway holds no Ethereum key) and recognised on chain. The balance leaves
-- the permission (a `refund` ledger entry) in the same transaction that writes the payout row, before anything is
-- sent, so a payout row is the claim that the money is owed; it is sent (or recognised) at most once.
CREATE TABLE payouts (
    id              uuid PRIMARY KEY,
    permission_id   uuid NOT NULL UNIQUE REFERENCES permissions (id),
    funding_source  text NOT NULL,
    asset           text NOT NULL,
    asset_decimals  smallint NOT NULL,
    method          text NOT NULL CHECK (method IN ('gateway_send', 'operator_payout')),
    destination     text NOT NULL,
    refund_amount   numeric(78, 0) NOT NULL CHECK (refund_amount >= 0),  -- what left the permission's balance
    network_fee     numeric(78, 0) NOT NULL CHECK (network_fee >= 0),    -- kept back for the network (Zcash)
    amount          numeric(78, 0) NOT NULL CHECK (amount >= 0),         -- what reaches the destination
    memo            text,
    -- not_needed: nothing to send. gateway_send: pending (to send) → sending (a send call is in flight, committed
    -- before the call) → submitted (the node's operation runs) → sent; unknown (no answer: reconciled with the
    -- node before anything is sent again). operator_payout: pending → paid.
    status          text NOT NULL CHECK (status IN ('not_needed', 'pending', 'sending', 'submitted', 'unknown',
                                                    'sent', 'paid')),
    attempts        integer NOT NULL DEFAULT 0,
    operation_id    text,
    send_height     bigint,     -- the chain's height when the current send started: where its transaction is sought
    created_block   bigint,     -- operator payouts: the tip when ordered; their transaction comes after it
    txid            text,
    block_height    bigint,
    last_error      text,
    resolved_note   text,       -- what the operator said when resolving an unknown outcome
    checked_at      timestamptz,  -- when the node was last asked about an unresolved send
    retry_at        timestamptz,  -- a pending send the node refused is tried again from then on
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CHECK (amount + network_fee = refund_amount),
    CHECK ((status IN ('sent', 'paid')) = (txid IS NOT NULL)),
    -- One transaction pays at most one payout, and a payout is paid by one transaction (its one txid).
    UNIQUE (funding_source, txid)
);
CREATE INDEX payouts_open ON payouts (funding_source, status) WHERE status NOT IN ('not_needed', 'sent', 'paid');

-- How far the operator-payout watcher has looked, per chain: blocks below `next_block` are deep enough to be final.
CREATE TABLE payout_scan_cursors (
    funding_source  text PRIMARY KEY,
    next_block      bigint NOT NULL CHECK (next_block >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A rate from the configured provider, locked for a window: `rate` is units of `currency` per one whole unit of
-- `asset`, exactly as the provider wrote it (numeric without a scale keeps every digit).
CREATE TABLE rate_quotes (
    id             uuid PRIMARY KEY,
    asset          text NOT NULL,
    currency       text NOT NULL,
    rate           numeric NOT NULL CHECK (rate > 0),
    source         text NOT NULL,
    rate_time      timestamptz NOT NULL,
    locked_until   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A permission asked for in a fiat currency: its terms in that currency's minor units (cents) and the quote its
-- crypto amounts (permissions.approved_amount, rate_per_hour) were converted at.
CREATE TABLE permission_pricing (
    permission_id        uuid PRIMARY KEY REFERENCES permissions (id),
    currency             text NOT NULL,
    currency_decimals    smallint NOT NULL,
    requested_amount     numeric(78, 0) NOT NULL CHECK (requested_amount > 0),
    rate_per_hour        numeric(78, 0) NOT NULL CHECK (rate_per_hour > 0),
    quote_id             uuid NOT NULL REFERENCES rate_quotes (id),
    requotes             integer NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
