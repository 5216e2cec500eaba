-- Accrual and settlement: the billing tick updates running totals in place; the ledger records settlements.
--
-- A session's `charged_amount` is still what it was charged so far (updated every tick, in place). What of it the
-- ledger already records is `settled_amount` (as of `settled_at`); the rest is accrued. A permission's `balance` is
-- still its live balance; `accrued_amount` is what its sessions accrued and the ledger does not record yet. So:
--     sum(ledger amounts of a permission) = balance + accrued_amount
--     accrued_amount = sum over its sessions of (charged_amount - settled_amount)
-- Settlement (one `charge` ledger entry for the unsettled part of a session) happens when a session ends (by the
-- client, exhaustion or expiry), at least hourly for a long session (checkpoint), and before any other ledger
-- entry of the permission (a top-up, a refund, a reversal), so the ledger's running balance reads in order.
ALTER TABLE sessions
    ADD COLUMN settled_amount numeric(78, 0) NOT NULL DEFAULT 0 CHECK (settled_amount >= 0),
    ADD COLUMN settled_at timestamptz;
UPDATE sessions SET settled_amount = charged_amount, settled_at = coalesce(ended_at, now());  -- all in the ledger
ALTER TABLE sessions ADD CONSTRAINT sessions_settled_within_charged CHECK (settled_amount <= charged_amount);

-- `stops_at`: when an active permission's balance runs out at the current total rate of its open sessions (or it
-- expires, if sooner); the stop job acts at that instant rather than at the next tick. NULL when nothing runs.
ALTER TABLE permissions
    ADD COLUMN accrued_amount numeric(78, 0) NOT NULL DEFAULT 0 CHECK (accrued_amount >= 0),
    ADD COLUMN stops_at timestamptz;
CREATE INDEX permissions_stops_at ON permissions (stops_at) WHERE status = 'active' AND stops_at IS NOT NULL;
-- Room on each page for the new version of a row, so the tick's in-place updates stay heap-only (HOT).
ALTER TABLE permissions SET (fillfactor = 70);

-- The instant an active permission runs dry: its open sessions together owe `balance` more when
--     sum(rate_s * (t - start_s)) / 3600 = balance + sum(charged_s + uncovered_s),
-- solved for t and rounded up to the second (exact numeric arithmetic; each session's owed amount is rounded down,
-- so the true instant is this one or a little later: the stop job then looks again a second later).
CREATE FUNCTION permission_stops_at(pid uuid) RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$
    SELECT CASE WHEN p.status <> 'active' OR s.rate IS NULL THEN NULL
                ELSE least(p.expires_at,
                           to_timestamp(ceil((3600 * (p.balance + s.owed_before) + s.weighted_start) / s.rate)::bigint))
           END
      FROM permissions p
      LEFT JOIN LATERAL (
            SELECT sum(rate_per_hour) AS rate,
                   sum(charged_amount + uncovered_amount) AS owed_before,
                   sum(rate_per_hour * extract(epoch FROM started_at)) AS weighted_start
              FROM sessions WHERE permission_id = p.id AND status = 'active') s ON true
     WHERE p.id = pid
    $$;

UPDATE permissions SET stops_at = permission_stops_at(id) WHERE status = 'active';

-- The audit trail records state changes and money events (the settled balance, `balance + accrued_amount`, moving:
-- a funding, a settlement, a refund), not every per-interval accrual.
CREATE OR REPLACE FUNCTION record_permission_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO permission_changes (permission_id, action, new_status, new_balance)
        VALUES (NEW.id, 'created', NEW.status, NEW.balance);
    ELSIF NEW.status IS DISTINCT FROM OLD.status
          OR NEW.balance + NEW.accrued_amount IS DISTINCT FROM OLD.balance + OLD.accrued_amount
          OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
        INSERT INTO permission_changes (permission_id, action, old_status, new_status, old_balance, new_balance)
        VALUES (NEW.id,
                CASE WHEN NEW.status IS DISTINCT FROM OLD.status THEN 'status_changed'
                     WHEN NEW.balance + NEW.accrued_amount IS DISTINCT FROM OLD.balance + OLD.accrued_amount
                         THEN 'balance_changed'
                     ELSE 'updated' END,
                OLD.status, NEW.status, OLD.balance, NEW.balance);
    END IF;
    RETURN NEW;
END $$;

-- What a session owes in total at `at`: floor(rate × whole elapsed seconds / 3600), rounded once, down (the money
-- rule). One definition for every statement that charges; simple enough for the planner to inline.
CREATE FUNCTION session_owed(rate_per_hour numeric, started_at timestamptz, at timestamptz) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT div(rate_per_hour * greatest(floor(extract(epoch FROM at - started_at)), 0), 3600) $$;
