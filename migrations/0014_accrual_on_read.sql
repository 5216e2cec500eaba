-- Accrual on read: the billing tick's fast path writes only its permissions' running totals.
--
-- Until now every tick rewrote each open session's `charged_amount` (100,000 sessions: 100,000 row versions a
-- minute). A covered session's charge is a pure function of time -- session_owed(rate, started_at, t) -- so the
-- tick now updates only the permission (`balance`, `accrued_amount`, `charged_amount`) and records the instant
-- it accrued through, `accrued_at` (never past the expiry; NULL until the first such tick). A session's current
-- charge is computed on read (streaming-money protocols such as Superfluid and Sablier keep streams the same way):
-- `accrued_charge` below is that rule, `live_sessions` the sessions with it applied, and every reader of a
-- session's charge reads `live_sessions`. What is stored is written out whenever the session is charged by
-- charge_sessions or settled; so, exactly, for every permission:
--     sum(ledger amounts) = balance + accrued_amount = the last entry's balance_after
--     accrued_amount = sum over its sessions of (live charged_amount - settled_amount)
-- A session's stored charge is authoritative once it ran short (uncovered_amount > 0 or exhausted_at set: the
-- balance did not pay all it owed) or left `active`; only charge_sessions decides those, and it writes them.
ALTER TABLE permissions ADD COLUMN accrued_at timestamptz;

-- session_owed was declared STRICT, which keeps the planner from inlining it (its body's greatest() ignores NULLs,
-- so strictness cannot be proved): every call went through the SQL-function executor, three times slower than the
-- arithmetic itself. Same body, not STRICT (a NULL argument still gives NULL).
CREATE OR REPLACE FUNCTION session_owed(rate_per_hour numeric, started_at timestamptz, at timestamptz) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT div(rate_per_hour * greatest(floor(extract(epoch FROM at - started_at)), 0), 3600) $$;

-- What a session has been charged, counting what accrued in place: for an open session that was never short, what
-- it owes through its permission's `accrued_at`, if that is more than what is stored.
-- `through` is NULL when nothing accrued in place. Inlined by the planner (one CASE expression, each argument used
-- once, so a sub-select passed as `through` runs only for the sessions it can change).
CREATE FUNCTION accrued_charge(charged numeric, uncovered numeric, exhausted_at timestamptz, status text,
                               rate_per_hour numeric, started_at timestamptz, through timestamptz) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN status = 'active' AND uncovered = 0 AND exhausted_at IS NULL
                THEN greatest(charged, session_owed(rate_per_hour, started_at, through))  -- greatest() skips NULL
                ELSE charged END
    $$;

-- Sessions as every reader sees them: the stored row with `charged_amount` counting what accrued in place. The
-- permission is looked up for open sessions only, so reading history costs nothing extra.
CREATE VIEW live_sessions AS
SELECT s.id, s.code_hash, s.permission_id, s.vendor_id, s.status, s.rate_per_hour, s.started_at, s.ended_at,
       accrued_charge(s.charged_amount, s.uncovered_amount, s.exhausted_at, s.status, s.rate_per_hour, s.started_at,
                      (SELECT p.accrued_at FROM permissions p WHERE p.id = s.permission_id))
           AS charged_amount,
       s.uncovered_amount, s.exhausted_at, s.settled_amount, s.settled_at
  FROM sessions s;

-- When a permission runs dry, counting what its sessions accrued in place (otherwise as in 0009 and 0013).
CREATE OR REPLACE FUNCTION permission_stops_at(pid uuid) RETURNS timestamptz
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN p.status <> 'active' OR s.rate IS NULL THEN NULL
                    ELSE least(p.expires_at,
                               to_timestamp(ceil((3600 * (p.balance + s.owed_before) + s.weighted_start) / s.rate)::bigint))
               END
          FROM permissions p
          LEFT JOIN LATERAL (
                SELECT sum(rate_per_hour) AS rate,
                       sum(accrued_charge(charged_amount, uncovered_amount, exhausted_at, status, rate_per_hour, started_at,
                                          p.accrued_at) + uncovered_amount) AS owed_before,
                       sum(rate_per_hour * extract(epoch FROM started_at)) AS weighted_start
                  FROM sessions WHERE permission_id = p.id AND status = 'active') s ON true
         WHERE p.id = pid);
END
$$;

-- The charge of the active sessions of some (locked) permissions at an instant, as in 0013, with each session's
-- charge counted as `accrued_charge` gives it, and written out whenever it differs from what is stored.
CREATE OR REPLACE FUNCTION charge_sessions(uuid[], timestamptz, uuid, boolean,
                                OUT sessions bigint, OUT stops_changed uuid[], OUT charged numeric,
                                OUT ledger_entries bigint, OUT sessions_changed bigint, OUT sessions_ended bigint,
                                OUT permissions_changed bigint, OUT direct_charges bigint, OUT webhook_events bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    WITH base AS (
        SELECT s.id AS session_id, s.permission_id, s.vendor_id, s.rate_per_hour, s.charged_amount AS stored_charge,
               accrued_charge(s.charged_amount, s.uncovered_amount, s.exhausted_at, s.status, s.rate_per_hour,
                              s.started_at, p.accrued_at) AS charged_amount,
               s.uncovered_amount,
               s.settled_amount, s.settled_at, s.started_at, s.exhausted_at AS session_exhausted_at,
               p.balance, p.accrued_amount, p.status AS permission_status, p.expires_at, p.funding_source, p.asset,
               p.asset_decimals,
               v.direct_charge_grace_seconds AS grace, v.webhook_url,
               $2::timestamptz AS at, least($2::timestamptz, p.expires_at) AS end_at
          FROM sessions s
          JOIN permissions p ON p.id = s.permission_id
          JOIN vendors v ON v.id = s.vendor_id
         WHERE s.status = 'active' AND s.permission_id = ANY($1::uuid[]) AND ($3::uuid IS NULL OR s.id = $3)
    ),
    owed AS (
        SELECT b.*,
               greatest(session_owed(b.rate_per_hour, b.started_at, b.end_at) - b.charged_amount - b.uncovered_amount, 0)
                   AS due
          FROM base b
    ),
    allocated AS (
        -- The balance pays the queue greedily, so through each session it has paid least(balance, what the queue owes
        -- through it): one window pass gives each session's charge.
        SELECT o.*,
               CASE WHEN o.permission_status = 'active'
                    THEN greatest(0, least(o.due, o.balance - (sum(o.due) OVER queue - o.due)))
                    ELSE 0 END AS charge,
               -- the balance is used up at `at` (exactly or with some left unpaid): every session stops now
               (o.permission_status = 'active' AND sum(o.due) OVER (PARTITION BY o.permission_id) >= o.balance)
                   AS drained
          FROM owed o
        WINDOW queue AS (PARTITION BY o.permission_id ORDER BY o.started_at, o.session_id)
    ),
    outcome AS (
        SELECT a.*,
               a.uncovered_amount + a.due - a.charge AS uncovered_after,
               (a.grace > 0 AND a.permission_status IN ('active', 'exhausted')) AS runs_on_credit,
               CASE WHEN a.due > a.charge OR a.session_exhausted_at IS NOT NULL OR a.drained
                    THEN coalesce(a.session_exhausted_at, a.at) END AS exhausted_after
          FROM allocated a
    ),
    decided AS (
        SELECT o.*,
               CASE
                 WHEN o.uncovered_after = 0 AND ($4 OR o.at >= o.expires_at) THEN 'ended'
                 WHEN o.uncovered_after = 0 AND NOT o.drained THEN 'active'
                 WHEN o.runs_on_credit THEN
                   CASE WHEN $4 OR o.at >= o.expires_at OR o.at >= o.exhausted_after + make_interval(secs => o.grace)
                        THEN 'pending_payment' ELSE 'active' END
                 ELSE 'exhausted'
               END AS new_status
          FROM outcome o
    ),
    settling AS (
        -- A session settles (its unsettled charge becomes one ledger entry) when it leaves `active`, and at least
        -- hourly while it runs (a checkpoint); otherwise its charge only accrues in place.
        SELECT d.*,
               CASE WHEN d.new_status <> 'active' OR coalesce(d.settled_at, d.started_at) <= d.at - interval '1 hour'
                    THEN d.charged_amount + d.charge - d.settled_amount ELSE 0 END AS settle
          FROM decided d
    ),
    session_updates AS (
        UPDATE sessions s
           SET charged_amount = x.charged_amount + x.charge,
               uncovered_amount = x.uncovered_after,
               exhausted_at = x.exhausted_after,
               status = x.new_status,
               ended_at = CASE WHEN x.new_status = 'active' THEN NULL ELSE x.end_at END,
               settled_amount = s.settled_amount + x.settle,
               settled_at = CASE WHEN x.settle > 0 OR x.new_status <> 'active' THEN x.at ELSE s.settled_at END
          FROM settling x
         WHERE s.id = x.session_id
           AND (x.charge > 0 OR x.new_status <> 'active' OR x.uncovered_after <> x.uncovered_amount OR x.settle > 0
                OR x.charged_amount <> x.stored_charge)  -- what accrued in place is written out
        RETURNING s.id
    ),
    ledger AS (
        -- balance_after is the settled balance (the sum of the ledger): what was settled before, less each settlement.
        INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id)
        SELECT x.permission_id, 'charge', -x.settle,
               x.balance + x.accrued_amount
                   - sum(x.settle) OVER (PARTITION BY x.permission_id ORDER BY x.started_at, x.session_id),
               x.session_id
          FROM settling x
         WHERE x.settle > 0
         ORDER BY x.permission_id, x.started_at, x.session_id
        RETURNING 1
    ),
    totals AS (
        SELECT x.permission_id, sum(x.charge) AS charged, sum(x.settle) AS settled, min(x.at) AS at,
               bool_or(x.new_status <> 'active') AS sessions_ended
          FROM settling x GROUP BY x.permission_id
    ),
    permission_updates AS (
        UPDATE permissions p
           SET balance = p.balance - t.charged,
               accrued_amount = p.accrued_amount + t.charged - t.settled,
               charged_amount = p.charged_amount + t.charged,
               status = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN 'exhausted' ELSE p.status END,
               exhausted_at = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN t.at ELSE p.exhausted_at END,
               stops_at = CASE WHEN p.status = 'active' AND p.balance = t.charged THEN NULL ELSE p.stops_at END,
               updated_at = now()
          FROM totals t
         WHERE p.id = t.permission_id
           AND (t.charged > 0 OR t.settled > 0 OR (p.status = 'active' AND p.balance = 0))
        RETURNING p.id, p.status, p.exhausted_at, p.funding_source, p.asset, p.asset_decimals, p.approved_amount,
                  p.charged_amount, p.expires_at
    ),
    direct AS (
        INSERT INTO direct_charges (session_id, permission_id, funding_source, asset, amount, status, finalized_at)
        SELECT d.session_id, d.permission_id, d.funding_source, d.asset, d.uncovered_after,
               CASE WHEN d.new_status = 'pending_payment' THEN 'pending_payment' ELSE 'accruing' END,
               CASE WHEN d.new_status = 'pending_payment' THEN d.at END
          FROM decided d
         WHERE d.runs_on_credit AND d.uncovered_after > 0
        ON CONFLICT (session_id) DO UPDATE
           SET amount = EXCLUDED.amount, status = EXCLUDED.status, finalized_at = EXCLUDED.finalized_at
        RETURNING 1
    ),
    -- Vendor webhooks (outbox rows, written in this same transaction), only for vendors with a webhook_url: each
    -- session leaving `active`, and each permission that became exhausted, to every vendor with sessions charged on it.
    session_ended_events AS (
        INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
        SELECT 'vendor_webhook', 'session.ended', 'session.ended:' || d.session_id, d.vendor_id, d.webhook_url,
               webhook_event('session.ended:' || d.session_id, 'session.ended', d.at, session_event_data(
                   d.session_id, d.permission_id, d.vendor_id, d.new_status, d.funding_source, d.asset, d.asset_decimals,
                   d.rate_per_hour, d.started_at) || jsonb_build_object(
                   'charged_amount', to_major(d.charged_amount + d.charge, d.asset_decimals)::text,
                   'uncovered_amount', to_major(d.uncovered_after, d.asset_decimals)::text,
                   'ended_at', webhook_time(d.end_at),
                   'duration_seconds', greatest(floor(extract(epoch FROM d.end_at - d.started_at)), 0)::bigint))
          FROM decided d
         WHERE d.new_status <> 'active' AND d.webhook_url IS NOT NULL
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING 1
    ),
    exhausted_events AS (
        -- Only active permissions are updated above, so a row that reads `exhausted` here became exhausted now.
        INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
        SELECT 'vendor_webhook', 'permission.exhausted', e.event_id, e.vendor_id, e.webhook_url,
               webhook_event(e.event_id, 'permission.exhausted', e.exhausted_at, jsonb_build_object(
                   'permission_id', e.id::text,
                   'funding_source', e.funding_source,
                   'asset', e.asset,
                   'approved_amount', to_major(e.approved_amount, e.asset_decimals)::text,
                   'charged_amount', to_major(e.charged_amount, e.asset_decimals)::text,
                   'remaining_amount', to_major(0, e.asset_decimals)::text,
                   'exhausted_at', webhook_time(e.exhausted_at),
                   'expires_at', webhook_time(e.expires_at),
                   'session_ids', e.session_ids))
          FROM (SELECT pu.*, sv.vendor_id, sv.webhook_url, sv.session_ids,
                       'permission.exhausted:' || pu.id || ':' || webhook_time(pu.exhausted_at) || ':' || sv.vendor_id
                           AS event_id
                  FROM permission_updates pu
                  JOIN (SELECT d.permission_id, d.vendor_id, d.webhook_url,
                               jsonb_agg(d.session_id::text ORDER BY d.started_at, d.session_id) AS session_ids
                          FROM decided d
                         WHERE d.webhook_url IS NOT NULL
                         GROUP BY d.permission_id, d.vendor_id, d.webhook_url) sv ON sv.permission_id = pu.id
                 WHERE pu.status = 'exhausted') e
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM decided) AS sessions,
           -- permissions whose open sessions changed: their stop instant is computed again after this statement
           ARRAY(SELECT t.permission_id FROM totals t WHERE t.sessions_ended) AS stops_changed,
           (SELECT coalesce(sum(charge), 0) FROM decided) AS charged,
           (SELECT count(*) FROM ledger) AS ledger_entries,
           (SELECT count(*) FROM session_updates) AS sessions_changed,
           (SELECT count(*) FROM decided WHERE new_status <> 'active') AS sessions_ended,
           (SELECT count(*) FROM permission_updates) AS permissions_changed,
           (SELECT count(*) FROM direct) AS direct_charges,
           (SELECT count(*) FROM session_ended_events) + (SELECT count(*) FROM exhausted_events) AS webhook_events
      INTO sessions, stops_changed, charged, ledger_entries, sessions_changed, sessions_ended,
           permissions_changed, direct_charges, webhook_events;
    IF cardinality(stops_changed) > 0 THEN
        PERFORM refresh_stop_instants(stops_changed, NULL);
    END IF;
END
$$;

-- The audit trail's trigger fired for every updated permission, only to find most updates (the tick's accruals)
-- change nothing it records. The same trigger, with the test in a WHEN clause so that such an update never enters
-- the trigger queue; what it records is unchanged (0009's record_permission_change).
DROP TRIGGER permissions_audit ON permissions;
CREATE TRIGGER permissions_audit AFTER INSERT ON permissions
    FOR EACH ROW EXECUTE FUNCTION record_permission_change();
CREATE TRIGGER permissions_audit_changes AFTER UPDATE ON permissions
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status
          OR NEW.balance + NEW.accrued_amount IS DISTINCT FROM OLD.balance + OLD.accrued_amount
          OR NEW.expires_at IS DISTINCT FROM OLD.expires_at)
    EXECUTE FUNCTION record_permission_change();
