-- Vendor webhooks: each vendor's receiver URL, the log of every delivery attempt, and the SQL helpers that build
-- event payloads inside the statements that cause the events (billing/charging.py, sessions.py, permissions.py,
-- direct_payments.py). Vendor messages are outbox rows of kind 'vendor_webhook' (0002), delivered by the same job
-- as reminders. No secret is stored: each vendor's secret is derived from WEBHOOK_SIGNING_KEY (billing/webhooks.py).

-- Where the vendor's events go; NULL: the vendor gets no webhooks (and no outbox rows are written for it).
ALTER TABLE vendors ADD COLUMN webhook_url text;

-- How many times a message was put back to `pending` by a redeliver request (its attempts restart from 0 then).
ALTER TABLE outbox ADD COLUMN redeliveries integer NOT NULL DEFAULT 0;

-- A vendor reads its own messages newest first.
CREATE INDEX outbox_vendor ON outbox (vendor_id, id DESC) WHERE vendor_id IS NOT NULL;

-- One row per delivery attempt of any outbox message (reminders and vendor webhooks), written with its result.
-- outcome: delivered (2xx), retrying (failed, tried again later), dead (failed, the last attempt), superseded (the
-- message changed meanwhile, e.g. another replica took it over after a lease ran out: this result was not applied).
CREATE TABLE webhook_deliveries (
    id            bigserial PRIMARY KEY,
    outbox_id     bigint NOT NULL REFERENCES outbox (id),
    attempt       integer NOT NULL CHECK (attempt > 0),
    outcome       text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'dead', 'superseded')),
    status_code   integer,
    error         text,
    duration_ms   integer NOT NULL CHECK (duration_ms >= 0),
    attempted_at  timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id, id);

-- An instant as webhook payloads write it: RFC 3339 in UTC with microseconds ("2024-05-01T12:00:00.000000Z").
CREATE FUNCTION webhook_time(moment timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- The envelope of every vendor event: {"id", "type", "created_at", "data"}. The event id is the message's
-- dedupe_key, so a receiver can drop a message it has already processed (redeliveries send the same id).
CREATE FUNCTION webhook_event(event_id text, event_type text, created_at timestamptz, data jsonb) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_build_object('id', event_id, 'type', event_type, 'created_at', webhook_time(created_at),
                                    'data', data) $$;
