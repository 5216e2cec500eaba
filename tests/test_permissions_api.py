"""Spending permissions over HTTP: the seed's flow, exact amounts, payments (under, over, late, duplicate,
reorged), addresses, authentication and Idempotency-Key — against the Zcash stand-in over real HTTP."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from billing.ledger import recompute_balances
from chains.zcash_address import ZcashNetwork, encode_sapling, encode_transparent, encode_unified
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, new_transparent_wallet, new_wallet

SEED_FIELDS = {"permission_id", "max_streaming_hours", "expires_at", "payment_address", "amount_to_pay"}
STATUS_FIELDS = {"permission_id", "status", "remaining_amount", "remaining_hours", "used_hours", "expires_at"}
WALLET_FIELDS = {"id", "user_wallet_address", "approved_amount", "remaining_amount", "status",
                 "max_streaming_hours", "used_streaming_hours", "expires_at"}


async def test_create_permission_answers_the_seed_fields_with_exact_strings(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5", duration_days=30)
    assert created.keys() >= SEED_FIELDS
    assert created["status"] == "pending_payment"
    assert created["amount_to_pay"] == "10.00000000"
    assert created["max_streaming_hours"] == "4.000000"
    assert created["remaining_amount"] == "0.00000000"
    assert created["permission_token"].startswith("pgp_")
    assert created["payment_address"].startswith("uregtest1")
    raw = await gw.db.fetchrow("SELECT * FROM permissions WHERE id = $1", created["permission_id"])
    assert created["permission_token"].encode() not in bytes(raw["token_hash"])
    assert raw["approved_amount"] == 1_000_000_000 and raw["rate_per_hour"] == 250_000_000


async def test_seed_flow_end_to_end(gw: Gateway) -> None:
    vendor = await gw.create_vendor("streamer")
    permission = await gw.create_permission("10", "2.5")
    pid, token = permission["permission_id"], permission["permission_token"]

    pending = await gw.verify(permission)
    assert pending["status"] == "pending_payment"
    assert pending["amount_received"] == "0.00000000" and pending["amount_missing"] == "10.00000000"

    txid = await gw.pay(permission["payment_address"], "10", memo="paygo")
    seen = await gw.verify(permission)
    assert seen["status"] == "pending_payment"
    assert seen["amount_received"] == "10.00000000" and seen["confirmations_seen"] == 0
    assert seen["payments"][0]["txid"] == txid

    await gw.mine(1)
    one_conf = await gw.verify(permission)
    assert one_conf["status"] == "pending_payment" and one_conf["confirmations_seen"] == 1
    await gw.mine(MIN_CONFIRMATIONS - 1)
    active = await gw.verify(permission)
    assert active["status"] == "active"
    assert active["remaining_amount"] == "10.00000000" and active["remaining_hours"] == "4.000000"

    status, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{pid}", token=token)
    assert status == 200 and shown.keys() >= STATUS_FIELDS and shown["used_hours"] == "0.000000"
    status, by_wallet = await gw.call("GET", f"/api/v1/zcash/permissions/wallet/{permission['user_wallet_address']}",
                                      token=token)
    assert status == 200 and by_wallet.keys() >= WALLET_FIELDS and by_wallet["id"] == pid

    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201 and {"session_code", "session_id"} <= opened.keys()
    await gw.backdate_session(opened["session_id"], 3600)
    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200
    assert ended["amount"] == "2.50000000"
    assert ended["duration_minutes"] == 60 and ended["duration_seconds"] == 3600
    assert ended["status"] == "confirmed"

    status, after = await gw.call("GET", f"/api/v1/zcash/permissions/{pid}", token=token)
    assert after["remaining_amount"] == "7.50000000"
    assert after["remaining_hours"] == "3.000000" and after["used_hours"] == "1.000000"
    assert await recompute_balances(gw.db) == []
    audit = await gw.db.fetch("SELECT action, new_status FROM permission_audit_log WHERE permission_id = $1 "
                              "ORDER BY id", pid)
    assert audit[0]["action"] == "created"
    assert [a["new_status"] for a in audit if a["action"] == "status_changed"] == ["active"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("requested_amount", "10.000000001", "invalid_amount"),
        ("requested_amount", 0, "invalid_amount"),
        ("requested_amount", "-1", "invalid_amount"),
        ("requested_amount", "NaN", "invalid_amount"),
        ("requested_amount", "1000.00000001", "invalid_amount"),
        ("requested_amount", "lots", "invalid_amount"),
        ("requested_amount", True, "invalid_amount"),
        ("rate_per_hour", Decimal("0.000000001"), "invalid_amount"),
        ("duration_days", 0, "invalid_duration"),
        ("duration_days", "30", "invalid_request"),
        ("duration_days", 10_000, "invalid_duration"),
        ("asset", "ETH", "invalid_asset"),
        ("surprise", 1, "invalid_request"),
    ],
)
async def test_bad_amounts_and_fields_are_422(gw: Gateway, field: str, value: object, code: str) -> None:
    body = {"user_wallet_address": new_wallet(), "requested_amount": "10", "rate_per_hour": "2.5", field: value}
    status, answer = await gw.call("POST", "/api/v1/zcash/permissions", json=body)
    assert status == 422, answer
    assert answer["error"]["code"] == code and answer["error"]["message"]


async def test_amounts_as_json_numbers_are_exact(gw: Gateway) -> None:
    created = await gw.create_permission(Decimal("0.00000001"), Decimal("0.00000001"))
    assert created["amount_to_pay"] == "0.00000001" and created["max_streaming_hours"] == "1.000000"
    tricky = await gw.create_permission(Decimal("0.3"), Decimal("0.1"))
    assert tricky["max_streaming_hours"] == "3.000000"


async def test_one_zatoshi_is_paid_and_counted(gw: Gateway) -> None:
    permission = await gw.create_permission("0.00000001", "0.00000001")
    await gw.pay(permission["payment_address"], "0.00000001")
    await gw.mine(MIN_CONFIRMATIONS)
    verified = await gw.verify(permission)
    assert verified["status"] == "active" and verified["remaining_amount"] == "0.00000001"


async def test_under_payment_stays_pending_then_tops_up(gw: Gateway) -> None:
    permission = await gw.create_permission("1", "0.1")
    await gw.pay(permission["payment_address"], "0.1")
    await gw.pay(permission["payment_address"], "0.2")
    await gw.mine(MIN_CONFIRMATIONS)
    partial = await gw.verify(permission)
    assert partial["status"] == "pending_payment"
    assert partial["amount_confirmed"] == "0.30000000" and partial["amount_missing"] == "0.70000000"
    await gw.pay(permission["payment_address"], "0.7")
    await gw.mine(MIN_CONFIRMATIONS)
    full = await gw.verify(permission)
    assert full["status"] == "active" and full["remaining_amount"] == "1.00000000"
    assert len(full["payments"]) == 3 and all(p["status"] == "credited" for p in full["payments"])
    assert await recompute_balances(gw.db) == []


async def test_over_payment_is_credited(gw: Gateway) -> None:
    permission = await gw.create_permission("1", "0.5")
    await gw.pay(permission["payment_address"], "1.5")
    await gw.mine(MIN_CONFIRMATIONS)
    verified = await gw.verify(permission)
    assert verified["status"] == "active"
    assert verified["remaining_amount"] == "1.50000000" and verified["remaining_hours"] == "3.000000"


async def test_late_payment_to_expired_permission_is_recorded_not_credited(gw: Gateway) -> None:
    permission = await gw.create_permission("1", "0.5")
    await gw.db.execute("UPDATE permissions SET expires_at = now() - interval '1 second' WHERE id = $1",
                        permission["permission_id"])
    await gw.pay(permission["payment_address"], "1")
    await gw.mine(MIN_CONFIRMATIONS)
    verified = await gw.verify(permission)
    assert verified["status"] == "expired"
    assert verified["remaining_amount"] == "0.00000000"
    assert [p["status"] for p in verified["payments"]] == ["late"]
    assert verified["amount_received"] == "1.00000000"


async def test_verify_twice_and_concurrently_credits_once(gw: Gateway) -> None:
    import asyncio

    permission = await gw.create_permission("2", "1")
    await gw.pay(permission["payment_address"], "2")
    await gw.mine(MIN_CONFIRMATIONS)
    results = await asyncio.gather(*(gw.verify(permission) for _ in range(8)))
    assert {r["remaining_amount"] for r in results} == {"2.00000000"}
    entries = await gw.db.fetchval("SELECT count(*) FROM ledger_entries WHERE permission_id = $1 AND kind = 'funding'",
                                   permission["permission_id"])
    assert entries == 1


async def test_same_txid_output_funds_one_permission_only(gw: Gateway) -> None:
    first = await gw.create_permission("1", "1")
    second = await gw.create_permission("1", "1")
    txid = await gw.pay(first["payment_address"], "1")
    await gw.mine(MIN_CONFIRMATIONS)
    assert (await gw.verify(first))["status"] == "active"
    # The same output offered again for another permission (as a node listing it under another address would):
    from billing.permissions import apply_payments
    from kernel.funding import Payment

    async with gw.db.acquire() as conn:
        replayed = await apply_payments(conn, second["permission_id"],
                                        [Payment(txid=txid, output_index=0, amount_units=100_000_000,
                                                 confirmations=MIN_CONFIRMATIONS)],
                                        min_confirmations=MIN_CONFIRMATIONS)
    assert replayed.status == "pending_payment" and replayed.balance == 0
    owners = await gw.db.fetch("SELECT permission_id FROM payments WHERE txid = $1", txid)
    assert [str(o["permission_id"]) for o in owners] == [first["permission_id"]]


async def test_reorg_before_activation_does_not_activate(gw: Gateway) -> None:
    permission = await gw.create_permission("1", "1")
    await gw.pay(permission["payment_address"], "1")
    [block] = await gw.mine(1)
    assert (await gw.verify(permission))["confirmations_seen"] == 1
    await gw.chain_rpc.call("invalidateblock", block)
    after_reorg = await gw.verify(permission)
    assert after_reorg["status"] == "pending_payment"
    assert after_reorg["confirmations_seen"] == 0 and after_reorg["remaining_amount"] == "0.00000000"
    await gw.mine(MIN_CONFIRMATIONS)  # the transaction is mined again on the new chain
    assert (await gw.verify(permission))["status"] == "active"


async def test_node_down_is_503_with_retry_after(gw: Gateway) -> None:
    permission = await gw.create_permission("1", "1")
    await gw.node.stop()
    status, body = await gw.call("POST", f"/api/v1/zcash/permissions/{permission['permission_id']}/verify",
                                 token=permission["permission_token"])
    assert status == 503 and body["error"]["code"] == "zcash_node_unavailable"
    status, body = await gw.call("POST", "/api/v1/zcash/permissions",
                                 json={"user_wallet_address": new_wallet(), "requested_amount": "1",
                                       "rate_per_hour": "1"})
    assert status == 503
    response = await gw.client.get(f"/api/v1/zcash/balance/{new_transparent_wallet()}")
    assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 1  # nothing half-written


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        encode_transparent(ZcashNetwork.MAIN, "p2pkh", bytes(20)),
        encode_sapling(ZcashNetwork.MAIN, bytes(43)),
        encode_unified(ZcashNetwork.TEST, {"sapling": bytes(43)}),
        "zregtestsapling1" + "q" * 75,
        "u" * 600,
    ],
)
async def test_malformed_and_wrong_network_addresses_are_422(gw: Gateway, address: str) -> None:
    status, body = await gw.call("POST", "/api/v1/zcash/permissions",
                                 json={"user_wallet_address": address, "requested_amount": "1", "rate_per_hour": "1"})
    assert status == 422, body
    assert body["error"]["code"] in {"invalid_address", "wrong_network", "invalid_request"}


async def test_wrong_network_names_both_networks(gw: Gateway) -> None:
    mainnet = encode_transparent(ZcashNetwork.MAIN, "p2pkh", bytes(20))
    status, body = await gw.call("GET", f"/api/v1/zcash/balance/{mainnet}")
    assert status == 422 and body["error"]["code"] == "wrong_network"
    assert "main" in body["error"]["message"]


async def test_balance_reports_transparent_and_refuses_to_invent_shielded(gw: Gateway) -> None:
    taddr = new_transparent_wallet()
    await gw.pay(taddr, "5")
    await gw.mine(1)
    status, body = await gw.call("GET", f"/api/v1/zcash/balance/{taddr}?rate_per_hour=2.5")
    assert status == 200
    assert body["transparent_balance"] == "5.00000000" and body["total_balance"] == "5.00000000"
    assert body["can_stream"] is True and body["estimated_hours"] == "2.000000"
    status, shielded = await gw.call("GET", f"/api/v1/zcash/balance/{new_wallet()}?rate_per_hour=1")
    assert status == 200
    assert shielded["shielded_balance"] is None and shielded["shielded_balance_reason"]
    assert shielded["total_balance"] is None
    status, bad = await gw.call("GET", f"/api/v1/zcash/balance/{taddr}?rate_per_hour=0.000000001")
    assert status == 422 and bad["error"]["code"] == "invalid_amount"


async def test_tokens_and_keys(gw: Gateway) -> None:
    permission = await gw.create_permission()
    other = await gw.create_permission()
    path = f"/api/v1/zcash/permissions/{permission['permission_id']}"
    assert (await gw.call("GET", path))[1]["error"]["code"] == "missing_token"
    status, body = await gw.call("GET", path, token="pgp_wrong")
    assert status == 401 and body["error"]["code"] == "invalid_token"
    status, body = await gw.call("GET", path, token=other["permission_token"])
    assert status == 403
    assert (await gw.call("GET", path, api_key=ADMIN_KEY))[0] == 200
    assert (await gw.call("GET", path, api_key="not-the-admin-key"))[0] == 401
    wallet_path = f"/api/v1/zcash/permissions/wallet/{permission['user_wallet_address']}"
    assert (await gw.call("GET", wallet_path))[0] == 401
    assert (await gw.call("GET", wallet_path, token=other["permission_token"]))[0] == 404
    assert (await gw.call("GET", wallet_path, api_key=ADMIN_KEY))[1]["id"] == permission["permission_id"]
    status, body = await gw.call("POST", "/api/v1/admin/vendors", json={"name": "x"})
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await gw.call("POST", "/api/v1/admin/vendors", json={"name": "x"}, api_key="pgv_nope")
    assert status == 403
    assert (await gw.call("GET", "/api/v1/zcash/permissions/not-a-uuid", api_key=ADMIN_KEY))[0] == 404


async def test_vendor_keys_are_stored_hashed(gw: Gateway) -> None:
    vendor = await gw.create_vendor("hashed")
    assert vendor["api_key"].startswith("pgv_")
    rows = await gw.db.fetch("SELECT key_hash, key_prefix FROM vendor_api_keys WHERE vendor_id = $1",
                             vendor["vendor_id"])
    assert len(rows) == 1 and vendor["api_key"].encode() not in bytes(rows[0]["key_hash"])
    assert len(rows[0]["key_prefix"]) < 12


async def test_idempotency_key_replays_the_first_answer(gw: Gateway) -> None:
    body = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
    headers = {"Idempotency-Key": "create-1-" + secrets.token_hex(16)}  # anonymous: at least 32 characters
    first = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=headers)
    again = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=headers)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 1
    status, refused = await gw.call("POST", "/api/v1/zcash/permissions", headers=headers,
                                    json={**body, "requested_amount": "2"})
    assert status == 422 and refused["error"]["code"] == "idempotency_key_reused"
    failing = await gw.call("POST", "/api/v1/zcash/permissions", json={**body, "requested_amount": "0"},
                            headers={"Idempotency-Key": "bad-1-" + "k" * 32})
    replay = await gw.call("POST", "/api/v1/zcash/permissions", json={**body, "requested_amount": "0"},
                           headers={"Idempotency-Key": "bad-1-" + "k" * 32})
    assert failing == replay and failing[0] == 422


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"requested_amount": NaN}', "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
async def test_broken_bodies_are_4xx_json(gw: Gateway, raw: bytes, content_type: str) -> None:
    response = await gw.client.post("/api/v1/zcash/permissions", data=raw, headers={"Content-Type": content_type})
    assert 400 <= response.status < 500
    body = await response.json()
    assert body["error"]["code"] in {"invalid_json", "invalid_request"}


async def test_unknown_routes_and_methods_are_json(gw: Gateway) -> None:
    status, body = await gw.call("GET", "/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await gw.call("DELETE", "/api/v1/sessions")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    response = await gw.client.post("/api/v1/zcash/permissions", data=b"x" * 100_000,
                                    headers={"Content-Type": "application/json"})
    assert response.status == 413 and (await response.json())["error"]["code"] == "body_too_large"


async def test_request_id_is_echoed(gw: Gateway) -> None:
    response = await gw.client.get("/api/v1/health/live", headers={"X-Request-ID": "trace-123"})
    assert response.headers["X-Request-ID"] == "trace-123"
    generated = await gw.client.get("/api/v1/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32
