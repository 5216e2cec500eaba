-- Watchers that scale (issue 11): each chain is scanned from a cursor, and what a pass needs is indexed, so a pass
-- costs what changed on chain, not what waits in the database.

-- Where the last complete scan of a funding source stopped: the newest blocks it processed (the newest one is the
-- position; the others let a reorganisation be found by hash, walking back) and the mempool digest it saw (a pass
-- that finds the same newest block and the same mempool has nothing to read). Written only after what the scan
-- found is applied, so a failed pass leaves it where it was.
CREATE TABLE chain_cursors (
    funding_source  text PRIMARY KEY,
    mempool_digest  text,
    scanned_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE chain_cursor_blocks (
    funding_source  text NOT NULL REFERENCES chain_cursors (funding_source) ON DELETE CASCADE,
    height          bigint NOT NULL CHECK (height >= 0),
    block_hash      text NOT NULL,
    PRIMARY KEY (funding_source, height)
);

-- Payments seen but not deep enough yet: every scan reports them again.
CREATE INDEX payments_seen ON payments (funding_source) WHERE status = 'seen';

-- A scan's outputs are matched to permissions by address (the unique index on payment_address leaves Ethereum's
-- shared service address out, so a query naming any funding source cannot use it).
CREATE INDEX permissions_payment_address ON permissions (funding_source, payment_address)
    WHERE payment_address IS NOT NULL;

-- Permissions waiting for their first payment, by the end of their payment window (expired every pass) and with
-- their source (counted every pass, from the index alone).
CREATE INDEX permissions_awaiting_payment ON permissions (payment_due_at, funding_source)
    WHERE status = 'pending_payment';
