"""Streaming sessions over HTTP: opening needs a funded permission, ending charges once, concurrency is settled
by PostgreSQL row locks, and the ledger always explains the balance."""

from __future__ import annotations

import asyncio

import pytest

from billing.ledger import recompute_balances
from tests.conftest import Gateway, new_wallet


@pytest.fixture
async def vendor(gw: Gateway) -> dict:
    return await gw.create_vendor("vendor")


async def test_end_twice_answers_the_same_and_charges_once(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    await gw.backdate_session(opened["session_id"], 1800)
    first = await gw.end_session(opened["session_code"])
    second = await gw.end_session(opened["session_code"])
    assert first == second and first[0] == 200
    assert first[1]["amount"] == "1.25000000" and first[1]["duration_seconds"] == 1800
    charges = await gw.db.fetchval("SELECT count(*) FROM ledger_entries WHERE session_id = $1", opened["session_id"])
    assert charges == 1


async def test_charge_is_rounded_once_in_the_payers_favour(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("1", "0.00000003")  # 3 zatoshi per hour
    _status, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 1199)  # owes 0.9991… zatoshi → 0
    _, ended = await gw.end_session(opened["session_code"])
    assert ended["amount"] == "0.00000000" and ended["status"] == "confirmed"


async def test_session_view_shows_charged_and_remaining(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    path = f"/api/v1/sessions/{opened['session_code']}"
    status, live = await gw.call("GET", path, token=permission["permission_token"])
    assert status == 200 and live["status"] == "active" and live["charged_amount"] == "0.00000000"
    assert live["remaining_hours"] == "4.000000"
    await gw.backdate_session(opened["session_id"], 7200)
    await gw.end_session(opened["session_code"])
    status, done = await gw.call("GET", path, token=permission["permission_token"])
    assert done["status"] == "ended" and done["charged_amount"] == "5.00000000"
    assert done["remaining_amount"] == "5.00000000" and done["remaining_hours"] == "2.000000"
    other = await gw.create_permission()
    assert (await gw.call("GET", path, token=other["permission_token"]))[0] == 403
    assert (await gw.call("GET", path))[0] == 401
    assert (await gw.call("GET", "/api/v1/sessions/NOSUCHCODE", token=permission["permission_token"]))[0] == 404


async def test_opening_needs_an_active_funded_unexpired_permission(gw: Gateway, vendor: dict) -> None:
    pending = await gw.create_permission()
    status, body = await gw.open_session(pending, vendor["vendor_id"])
    assert status == 402 and body["error"]["code"] == "permission_not_funded"

    expired = await gw.funded_permission("1", "1")
    await gw.db.execute("UPDATE permissions SET expires_at = now() - interval '1 second' WHERE id = $1",
                        expired["permission_id"])
    status, body = await gw.open_session(expired, vendor["vendor_id"])
    assert status == 402 and body["error"]["code"] == "permission_expired"

    drained = await gw.funded_permission("1", "1")
    _, opened = await gw.open_session(drained, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 7200)  # owes 2 ZEC, has 1
    _, ended = await gw.end_session(opened["session_code"])
    assert ended["amount"] == "1.00000000" and ended["status"] == "exhausted"
    assert ended["uncovered_amount"] == "1.00000000"
    status, body = await gw.open_session(drained, vendor["vendor_id"])
    assert status == 402 and body["error"]["code"] == "permission_exhausted"
    assert await recompute_balances(gw.db) == []


async def test_session_request_checks(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("1", "1")
    status, body = await gw.call("POST", "/api/v1/sessions", json={"user_wallet_address": new_wallet(),
                                                                    "vendor_id": vendor["vendor_id"]},
                                 token=permission["permission_token"])
    assert status == 403 and body["error"]["code"] == "wallet_mismatch"
    status, body = await gw.call("POST", "/api/v1/sessions", json={
        "user_wallet_address": permission["user_wallet_address"], "vendor_id": "vendor123"},
        token=permission["permission_token"])
    assert status == 404 and body["error"]["code"] == "vendor_not_found"
    status, body = await gw.call("POST", "/api/v1/sessions", json={
        "user_wallet_address": permission["user_wallet_address"], "vendor_id": vendor["vendor_id"]})
    assert status == 401
    status, body = await gw.end_session("NOT-A-REAL-CODE")
    assert status == 404 and body["error"]["code"] == "session_not_found"
    status, body = await gw.call("POST", "/api/v1/sessions/end", json={})
    assert status == 422


async def test_fifty_concurrent_ends_never_overdraw(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("1", "1")  # 1 ZEC; each session will owe 0.1 ZEC
    opened = await asyncio.gather(*(gw.open_session(permission, vendor["vendor_id"]) for _ in range(50)))
    assert {status for status, _ in opened} == {201}
    # all started exactly 360 s ago (so each owes 0.1 ZEC however long opening the fifty took)
    await gw.db.execute("UPDATE sessions SET started_at = now() - interval '360 seconds' WHERE permission_id = $1",
                        permission["permission_id"])
    ended = await asyncio.gather(*(gw.end_session(body["session_code"]) for _, body in opened))
    assert {status for status, _ in ended} == {200}
    amounts = sorted(body["amount"] for _, body in ended)
    charged = sum(int(a.replace(".", "")) for a in amounts)
    assert charged == 100_000_000  # exactly the balance, never more
    assert sum(1 for _, body in ended if body["status"] == "confirmed") == 10
    balance = await gw.db.fetchval("SELECT balance FROM permissions WHERE id = $1", permission["permission_id"])
    assert balance == 0
    assert await recompute_balances(gw.db) == []


async def test_twenty_simultaneous_retries_under_one_key_open_one_session(gw: Gateway, vendor: dict) -> None:
    """The key is claimed in the transaction that opens: a duplicate waits on its row, then replays the answer."""
    permission = await gw.funded_permission("1", "1")
    key = {"Idempotency-Key": "open-" + new_wallet()[-20:]}
    answers = await asyncio.gather(*(gw.call("POST", "/api/v1/sessions", token=permission["permission_token"],
                                             json={"user_wallet_address": permission["user_wallet_address"],
                                                   "vendor_id": vendor["vendor_id"]}, headers=key)
                                     for _ in range(20)))
    assert {status for status, _ in answers} == {201}
    assert len({body["session_code"] for _, body in answers}) == 1
    assert await gw.db.fetchval("SELECT count(*) FROM sessions") == 1
    [(_, opened)] = answers[:1]
    ending = {"Idempotency-Key": "end-" + new_wallet()[-40:]}
    ends = await asyncio.gather(*(gw.call("POST", "/api/v1/sessions/end", json={"session_code": opened["session_code"]},
                                          headers=ending) for _ in range(20)))
    assert {status for status, _ in ends} == {200} and len({str(body) for _, body in ends}) == 1
    assert await recompute_balances(gw.db) == []


async def test_fifty_concurrent_opens_and_ends_mixed(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("2", "1")
    first = await asyncio.gather(*(gw.open_session(permission, vendor["vendor_id"]) for _ in range(25)))
    await gw.db.execute("UPDATE sessions SET started_at = now() - interval '720 seconds' WHERE permission_id = $1",
                        permission["permission_id"])
    results = await asyncio.gather(
        *(gw.end_session(body["session_code"]) for _, body in first),
        *(gw.open_session(permission, vendor["vendor_id"]) for _ in range(25)),
    )
    ends, opens = results[:25], results[25:]
    assert {status for status, _ in ends} == {200}
    assert sum(1 for _, body in ends if body["status"] == "confirmed") == 10  # 25 × 0.2 ZEC owed, 2 ZEC held
    for status, body in opens:
        assert status == 201 or (status == 402 and body["error"]["code"] == "permission_exhausted")
    balance = await gw.db.fetchval("SELECT balance FROM permissions WHERE id = $1", permission["permission_id"])
    assert balance == 0
    assert await recompute_balances(gw.db) == []


async def test_ledger_is_append_only(gw: Gateway) -> None:
    await gw.funded_permission("1", "1")
    import asyncpg

    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await gw.db.execute("UPDATE ledger_entries SET amount = amount + 1")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await gw.db.execute("DELETE FROM ledger_entries")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await gw.db.execute("TRUNCATE ledger_entries CASCADE")


async def test_seed_operator_views_answer(gw: Gateway, vendor: dict) -> None:
    permission = await gw.funded_permission("10", "2.5")
    await gw.open_session(permission, vendor["vendor_id"])
    active = await gw.db.fetch("SELECT * FROM active_permissions_with_sessions")
    assert len(active) == 1 and active[0]["active_sessions"] == 1
    assert str(active[0]["remaining_amount"]) == "10.00000000"
    stats = await gw.db.fetch("SELECT * FROM permission_statistics WHERE status = 'active'")
    assert stats[0]["permissions"] == 1 and str(stats[0]["funded_amount"]) == "10.00000000"
    audit = await gw.db.fetch("SELECT * FROM permission_audit_log WHERE permission_id = $1 ORDER BY created_at DESC",
                              permission["permission_id"])
    assert audit and audit[-1]["action"] == "created"
