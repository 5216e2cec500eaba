-- An Idempotency-Key on the hot path (opening and ending a session) costs no extra round trip: the key is claimed,
-- the work done and its outcome recorded in the one call that does the work (billing/idempotency.py says what is
-- stored and why it holds no secret).
--
-- Such a record is written and completed in one transaction, so no other request ever sees it in progress: a
-- duplicate sent at the same moment waits on the row and then replays it. It keeps the function's answer
-- (`outcome`, which holds no secret) instead of a sealed body; `response` holds what the answer showed once (a new
-- session's code), sealed by the gateway before the call. The gateway renders the replay from both. Records of the
-- other routes (claimed, then completed by the gateway after the handler ran) keep `status_code` and `response`.
ALTER TABLE idempotency_keys ADD COLUMN outcome jsonb;

-- Claim (scope, key_id) for this request in the calling transaction, every route's one way: NULL when claimed (new,
-- expired after `key_ttl`, or an abandoned claim of the same request taken over once its `lease` ran out), else the
-- record that holds the key, read after any transaction that held it ended: `request_hash`, `status_code`,
-- `outcome` and `response` (hex); all null when it went in the meantime.
CREATE FUNCTION claim_idempotency_key(key_scope bytea, key_id bytea, request_hash bytea, key_ttl interval,
                                      lease interval)
    RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    held idempotency_keys%ROWTYPE;
BEGIN
    INSERT INTO idempotency_keys AS k (scope, key_id, request_hash, locked_until)
    VALUES (key_scope, claim_idempotency_key.key_id, claim_idempotency_key.request_hash, now() + lease)
    ON CONFLICT (scope, key_id) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, locked_until = EXCLUDED.locked_until, status_code = NULL,
           response = NULL, outcome = NULL, created_at = now()
     WHERE k.created_at <= now() - key_ttl
        OR (k.status_code IS NULL AND k.outcome IS NULL AND k.locked_until < now()
            AND k.request_hash = EXCLUDED.request_hash);
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO held FROM idempotency_keys k WHERE k.scope = key_scope AND k.key_id = claim_idempotency_key.key_id;
    RETURN jsonb_build_object('request_hash', encode(held.request_hash, 'hex'), 'status_code', held.status_code,
                              'outcome', held.outcome, 'response', encode(held.response, 'hex'));
END
$$;

-- Record what the call answered under the key it claimed (the same transaction); a key whose call must run again
-- (`forget`: the wallet needs its funding source to spell it) is released instead.
CREATE FUNCTION complete_idempotency_key(key_scope bytea, key_id bytea, answer jsonb, sealed bytea, forget boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    IF forget THEN
        DELETE FROM idempotency_keys k WHERE k.scope = key_scope AND k.key_id = complete_idempotency_key.key_id;
    ELSE
        UPDATE idempotency_keys k SET outcome = answer, response = sealed
         WHERE k.scope = key_scope AND k.key_id = complete_idempotency_key.key_id;
    END IF;
END
$$;

-- `open_session` under an Idempotency-Key, scoped to the token (checked first: a replay reaches only a valid
-- token's holder). `sealed_code` is the new session's code, sealed for this caller and key; it is kept only when the
-- session opened. Answers as `open_session` does, or `{"outcome": "replay", "record": ...}`.
CREATE FUNCTION open_session_once(token_hash bytea, wallet text, vendor uuid, session_id uuid, code_hash bytea,
                                  key_scope bytea, key_id bytea, request_hash bytea, key_ttl interval,
                                  sealed_code bytea)
    RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    held jsonb;
    answer jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM permissions p WHERE p.token_hash = open_session_once.token_hash) THEN
        RETURN jsonb_build_object('outcome', 'invalid_token');
    END IF;
    held := claim_idempotency_key(key_scope, key_id, request_hash, key_ttl, interval '0');
    IF held IS NOT NULL THEN
        RETURN jsonb_build_object('outcome', 'replay', 'record', held);
    END IF;
    answer := open_session(token_hash, wallet, vendor, session_id, code_hash);
    PERFORM complete_idempotency_key(key_scope, key_id, answer,
                                     CASE WHEN answer ->> 'outcome' = 'opened' THEN sealed_code END,
                                     answer ->> 'outcome' IN ('invalid_token', 'wallet_differs'));
    RETURN answer;
END
$$;

-- `end_session` under an Idempotency-Key (an anonymous route: the long key is the secret). Answers as `end_session`
-- does, or `{"outcome": "replay", "record": ...}`.
CREATE FUNCTION end_session_once(code_hash bytea, key_scope bytea, key_id bytea, request_hash bytea,
                                 key_ttl interval)
    RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    held jsonb;
    answer jsonb;
BEGIN
    held := claim_idempotency_key(key_scope, key_id, request_hash, key_ttl, interval '0');
    IF held IS NOT NULL THEN
        RETURN jsonb_build_object('outcome', 'replay', 'record', held);
    END IF;
    answer := end_session(code_hash);
    PERFORM complete_idempotency_key(key_scope, key_id, answer, NULL, false);
    RETURN answer;
END
$$;
