-- Operator views beside the seed's three (0001): revenue per vendor per day and asset, scheduler health and the
-- webhook backlog (the last two read the scheduler's tables from 0002). `paygo report` prints them all.

-- Revenue per vendor per UTC day and asset, net: every ledger entry of the vendor's sessions (a charge is a
-- negative entry, so revenue is minus their sum). `revenue` in whole units (exact numeric), `revenue_units` in
-- minor units. Direct charges paid on chain (hybrid fallback) are not ledger entries and are not counted here.
CREATE VIEW vendor_revenue_daily AS
SELECT s.vendor_id,
       v.name AS vendor_name,
       (le.created_at AT TIME ZONE 'UTC')::date AS day,
       p.asset,
       count(*) FILTER (WHERE le.kind = 'charge') AS charges,
       count(DISTINCT le.session_id) AS sessions,
       -sum(le.amount) AS revenue_units,
       to_major(-sum(le.amount), min(p.asset_decimals)) AS revenue
FROM ledger_entries le
JOIN sessions s ON s.id = le.session_id
JOIN vendors v ON v.id = s.vendor_id
JOIN permissions p ON p.id = le.permission_id
GROUP BY s.vendor_id, v.name, (le.created_at AT TIME ZONE 'UTC')::date, p.asset;

-- One row per scheduler job: when it last ran and succeeded, how long ago (lag), and whether its last run failed.
CREATE VIEW scheduler_health AS
SELECT j.job_name,
       j.last_started_at,
       j.last_succeeded_at,
       floor(extract(epoch FROM now() - j.last_succeeded_at))::bigint AS seconds_since_success,
       j.last_duration_ms,
       j.runs,
       (j.last_started_at IS NOT NULL
        AND (j.last_succeeded_at IS NULL OR j.last_succeeded_at < j.last_started_at)
        AND j.last_error IS NOT NULL) AS failing,
       j.last_error
FROM job_runs j;

-- Messages not delivered yet (pending) or given up on (dead), per kind, event and state; target URLs are left out
-- (they may carry a receiver's secret).
CREATE VIEW webhook_backlog AS
SELECT o.kind,
       o.event_type,
       o.status,
       count(*) AS messages,
       count(*) FILTER (WHERE o.attempts > 0) AS retried,
       max(o.attempts) AS max_attempts,
       min(o.created_at) AS oldest_created_at,
       floor(extract(epoch FROM now() - min(o.created_at)))::bigint AS oldest_age_seconds,
       min(o.next_attempt_at) FILTER (WHERE o.status = 'pending') AS next_attempt_at
FROM outbox o
WHERE o.status IN ('pending', 'dead')
GROUP BY o.kind, o.event_type, o.status;
