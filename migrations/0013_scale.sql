-- Scale-out: several gateways and schedulers share one database.

-- Which process ran each job last (host:pid): with `paygo serve --workers N` the jobs run in one process of their
-- own, and with several `paygo scheduler` replicas an operator sees which one is active.
ALTER TABLE job_runs ADD COLUMN last_runner text;

-- One database round trip per request on the hot path: opening and ending a session are one call each of the
-- functions below (the gateway's billing.sessions calls them), each its own transaction. They take the same locks
-- in the same order as every other path (the permission, then its sessions), so nothing can deadlock.

-- When each (locked) permission runs dry again, after its open sessions or its balance changed; `not_before` puts
-- off one that is still running at an instant already passed (its sessions' amounts round down, so its money lasts a
-- little longer). billing.charging.refresh_stop_instants calls it.
CREATE FUNCTION refresh_stop_instants(permission_ids uuid[], not_before timestamptz) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE permissions p SET stops_at = s.stops_at
      FROM (SELECT d.id, CASE WHEN d.due IS NULL OR not_before IS NULL THEN d.due ELSE greatest(d.due, not_before) END
                   AS stops_at
              FROM (SELECT id, permission_stops_at(id) AS due FROM permissions WHERE id = ANY(permission_ids)
                    OFFSET 0) d) s  -- OFFSET 0: each permission's instant is computed once
     WHERE p.id = s.id AND p.stops_at IS DISTINCT FROM s.stops_at;
END
$$;

-- The same instant as migration 0009 defines it, in PL/pgSQL so that a connection plans it once, not on every call.
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
                       sum(charged_amount + uncovered_amount) AS owed_before,
                       sum(rate_per_hour * extract(epoch FROM started_at)) AS weighted_start
                  FROM sessions WHERE permission_id = p.id AND status = 'active') s ON true
         WHERE p.id = pid);
END
$$;

-- The charge of the active sessions of some (locked) permissions at an instant: $1 the permissions, $2 the instant,
-- $3 one session only (or NULL), $4 whether they end now. The rule and its allocation are explained in
-- billing/charging.py, which calls it for the billing tick, the hard stop and expiry; end_session below calls it
-- for the final charge. Permissions whose open sessions changed get their stop instant computed again.
CREATE FUNCTION charge_sessions(uuid[], timestamptz, uuid, boolean,
                                OUT sessions bigint, OUT stops_changed uuid[], OUT charged numeric,
                                OUT ledger_entries bigint, OUT sessions_changed bigint, OUT sessions_ended bigint,
                                OUT permissions_changed bigint, OUT direct_charges bigint, OUT webhook_events bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    WITH base AS (
        SELECT s.id AS session_id, s.permission_id, s.vendor_id, s.rate_per_hour, s.charged_amount, s.uncovered_amount,
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
           SET charged_amount = s.charged_amount + x.charge,
               uncovered_amount = x.uncovered_after,
               exhausted_at = x.exhausted_after,
               status = x.new_status,
               ended_at = CASE WHEN x.new_status = 'active' THEN NULL ELSE x.end_at END,
               settled_amount = s.settled_amount + x.settle,
               settled_at = CASE WHEN x.settle > 0 OR x.new_status <> 'active' THEN x.at ELSE s.settled_at END
          FROM settling x
         WHERE s.id = x.session_id
           AND (x.charge > 0 OR x.new_status <> 'active' OR x.uncovered_after <> x.uncovered_amount OR x.settle > 0)
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

-- Open a session on the permission of a token: one call, its own transaction. The answer (jsonb) names the outcome:
-- `opened` with the session; or why not: `invalid_token`; `wallet_differs` (with the permission's funding source and
-- wallet: the caller may have sent an equivalent spelling of it, which only the funding source can tell);
-- `permission_expired`, `permission_not_funded`, `permission_exhausted`, `permission_not_active` (with its status);
-- `vendor_not_found`. The session row and its `session.started` vendor event (outbox) are written together.
CREATE FUNCTION open_session(token_hash bytea, wallet text, vendor uuid, session_id uuid, code_hash bytea)
    RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    p permissions%ROWTYPE;
    opened sessions%ROWTYPE;
BEGIN
    SELECT * INTO p FROM permissions WHERE permissions.token_hash = open_session.token_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'invalid_token');
    END IF;
    IF p.user_wallet_address <> wallet THEN
        RETURN jsonb_build_object('outcome', 'wallet_differs', 'funding_source', p.funding_source,
                                  'wallet', p.user_wallet_address);
    END IF;
    IF p.expires_at <= now() OR p.status = 'expired' THEN
        RETURN jsonb_build_object('outcome', 'permission_expired');
    ELSIF p.status = 'pending_payment' THEN
        RETURN jsonb_build_object('outcome', 'permission_not_funded');
    ELSIF p.status = 'exhausted' OR (p.status = 'active' AND p.balance <= 0) THEN
        RETURN jsonb_build_object('outcome', 'permission_exhausted');
    ELSIF p.status <> 'active' THEN
        RETURN jsonb_build_object('outcome', 'permission_not_active', 'status', p.status);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM vendors WHERE id = vendor) THEN
        RETURN jsonb_build_object('outcome', 'vendor_not_found');
    END IF;
    INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour)
    VALUES (session_id, open_session.code_hash, p.id, vendor, p.rate_per_hour)
    RETURNING * INTO opened;
    -- the vendor's webhook, if it has one, in this same transaction (outbox)
    INSERT INTO outbox (kind, event_type, dedupe_key, vendor_id, target_url, payload)
    SELECT 'vendor_webhook', 'session.started', 'session.started:' || opened.id, v.id, v.webhook_url,
           webhook_event('session.started:' || opened.id, 'session.started', opened.started_at, session_event_data(
               opened.id, opened.permission_id, opened.vendor_id, opened.status, p.funding_source, p.asset,
               p.asset_decimals, opened.rate_per_hour, opened.started_at))
      FROM vendors v
     WHERE v.id = vendor AND v.webhook_url IS NOT NULL
    ON CONFLICT (dedupe_key) DO NOTHING;
    PERFORM refresh_stop_instants(ARRAY[p.id], NULL);  -- one more session: the money runs out sooner
    RETURN jsonb_build_object('outcome', 'opened', 'session', to_jsonb(opened));
END
$$;

-- End a session by its code with its final charge: one call, its own transaction. Ending an ended session changes
-- nothing. The answer (jsonb): `session_not_found`, or `ended` with the session, its permission and the instant.
CREATE FUNCTION end_session(code_hash bytea) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    ending sessions%ROWTYPE;
    moment timestamptz := now();
BEGIN
    SELECT * INTO ending FROM sessions WHERE sessions.code_hash = end_session.code_hash;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'session_not_found');
    END IF;
    PERFORM 1 FROM permissions WHERE id = ending.permission_id FOR UPDATE;
    SELECT * INTO ending FROM sessions WHERE id = ending.id FOR UPDATE;
    IF ending.status = 'active' THEN
        PERFORM charge_sessions(ARRAY[ending.permission_id], moment, ending.id, true);
        SELECT * INTO ending FROM sessions WHERE id = ending.id;
    END IF;
    RETURN jsonb_build_object('outcome', 'ended', 'session', to_jsonb(ending), 'now', moment,
                              'permission', (SELECT to_jsonb(p) FROM permissions p WHERE p.id = ending.permission_id));
END
$$;

-- Beyond one primary (README, "Scale-out"): sharding by permission, co-located on the permission id, needs every
-- money table to carry the permission it belongs to. Payments did not when they pay a direct charge (their
-- `permission_id` means "funds this permission", so it stays NULL there): `owner_permission_id` is the permission
-- whose shard holds the payment, the one it funds or the one whose session ran on the direct charge it pays, set by
-- a trigger so that no writer has to know.
ALTER TABLE payments ADD COLUMN owner_permission_id uuid REFERENCES permissions (id);
UPDATE payments q
   SET owner_permission_id = coalesce(q.permission_id,
                                      (SELECT d.permission_id FROM direct_charges d WHERE d.id = q.direct_charge_id));
ALTER TABLE payments ALTER COLUMN owner_permission_id SET NOT NULL;

CREATE FUNCTION set_payment_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.owner_permission_id := coalesce(NEW.permission_id,
                                        (SELECT d.permission_id FROM direct_charges d WHERE d.id = NEW.direct_charge_id));
    RETURN NEW;
END $$;
CREATE TRIGGER payments_owner BEFORE INSERT OR UPDATE OF permission_id, direct_charge_id ON payments
    FOR EACH ROW EXECUTE FUNCTION set_payment_owner();
