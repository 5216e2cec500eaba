-- The `data` every session.* vendor event carries, written once: session.started sends it as it is, session.ended
-- adds what the session was charged and when it ended.
CREATE FUNCTION session_event_data(session_id uuid, permission_id uuid, vendor_id uuid, status text,
                                   funding_source text, asset text, asset_decimals smallint, rate_per_hour numeric,
                                   started_at timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_build_object('session_id', session_id::text, 'permission_id', permission_id::text,
                                    'vendor_id', vendor_id::text, 'status', status, 'funding_source', funding_source,
                                    'asset', asset, 'rate_per_hour', to_major(rate_per_hour, asset_decimals)::text,
                                    'started_at', webhook_time(started_at)) $$;
