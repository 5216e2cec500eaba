"""The billing tick: exact totals whatever the tick pattern, idempotent, safe with replicas and crashes, with
exhaustion (end or grace with a direct charge) and expiry. Time is the tick's explicit `at`, never a sleep."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from billing.charging import billing_tick, expire_permissions
from billing.ledger import recompute_balances
from kernel.money import owed_for
from tests.conftest import Gateway

ZAT = 100_000_000


async def start_sessions(gw: Gateway, vendor_id: str, permission: dict[str, Any], count: int) -> list[dict[str, Any]]:
    sessions = []
    for _ in range(count):
        status, body = await gw.open_session(permission, vendor_id)
        assert status == 201, body
        sessions.append(body)
    return sessions


async def started_at(gw: Gateway, session_id: str) -> datetime:
    return await gw.db.fetchval("SELECT started_at FROM sessions WHERE id = $1", session_id)


async def assert_exact(gw: Gateway, at: datetime) -> None:
    """Every session was charged exactly what it owed at `at` (or up to its end); the ledger records what was
    settled of it, the rest is accrued, and every balance recomputes from what is stored."""
    rows = await gw.db.fetch("SELECT id, status, rate_per_hour, started_at, ended_at, charged_amount, "
                             "uncovered_amount, settled_amount FROM live_sessions")
    for row in rows:
        end = row["ended_at"] or at
        owed = owed_for(row["rate_per_hour"], int((end - row["started_at"]).total_seconds()))
        assert row["charged_amount"] + row["uncovered_amount"] == owed, dict(row)
        settled = await gw.db.fetchval("SELECT -coalesce(sum(amount), 0) FROM ledger_entries WHERE session_id = $1",
                                       row["id"])
        assert settled == row["settled_amount"] <= row["charged_amount"]
        if row["status"] != "active":
            assert settled == row["charged_amount"]  # an ended session is settled in full
    assert await recompute_balances(gw.db) == []


async def test_many_ticks_with_odd_intervals_sum_to_the_once_rounded_total(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    sessions = await start_sessions(gw, vendor["vendor_id"], permission, 3)
    t0 = max([await started_at(gw, s["session_id"]) for s in sessions])
    for offset in (7, 61, 62, 999, 1000, 1001, 2222, 3599):
        await billing_tick(gw.database, at=t0 + timedelta(seconds=offset, microseconds=offset * 37 % 1_000_000))
        await assert_exact(gw, t0 + timedelta(seconds=offset, microseconds=offset * 37 % 1_000_000))
    final = t0 + timedelta(seconds=3600)
    await billing_tick(gw.database, at=final)
    await assert_exact(gw, final)
    balance = await gw.db.fetchval("SELECT balance FROM permissions WHERE id = $1", permission["permission_id"])
    charged = await gw.db.fetchval("SELECT sum(charged_amount) FROM live_sessions")
    assert balance + charged == 10 * ZAT


async def test_a_covered_tick_writes_only_the_permission_and_reads_stay_exact(gw: Gateway) -> None:
    """The fast path accrues in place on the permission alone: no session row gets a new version (its `xmin` stays),
    yet every reader (`live_sessions`, the session's own view) shows what it owes through the tick; settling
    writes that charge into the row."""
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    sessions = await start_sessions(gw, vendor["vendor_id"], permission, 3)
    t0 = max([await started_at(gw, s["session_id"]) for s in sessions])
    versions = "SELECT id, xmin::text AS version FROM sessions ORDER BY id"
    before = await gw.db.fetch(versions)
    at = t0 + timedelta(seconds=600)
    result = await billing_tick(gw.database, at=at)
    assert result.sessions == 3 and result.charged > 0
    assert await gw.db.fetch(versions) == before  # no session row was written
    assert await gw.db.fetchval("SELECT accrued_at FROM permissions WHERE id = $1", permission["permission_id"]) == at
    await assert_exact(gw, at)
    stored = await gw.db.fetchval("SELECT sum(charged_amount) FROM sessions")
    live = await gw.db.fetchval("SELECT sum(charged_amount) FROM live_sessions")
    assert stored == 0 and live == result.charged
    status, shown = await gw.call("GET", f"/api/v1/sessions/{sessions[0]['session_code']}",
                                  token=permission["permission_token"])
    assert status == 200, shown
    owed = owed_for(250_000_000, int((at - await started_at(gw, sessions[0]["session_id"])).total_seconds()))
    assert Decimal(shown["charged_amount"]) == Decimal(owed) / ZAT


async def test_a_tick_run_twice_charges_nothing_more(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    [session] = await start_sessions(gw, vendor["vendor_id"], permission, 1)
    at = await started_at(gw, session["session_id"]) + timedelta(seconds=1234)
    first = await billing_tick(gw.database, at=at)
    entries = await gw.db.fetchval("SELECT count(*) FROM ledger_entries")
    second = await billing_tick(gw.database, at=at)
    earlier = await billing_tick(gw.database, at=at - timedelta(seconds=100))  # a late replica with an older clock
    assert first.charged == owed_for(250_000_000, 1234) and second.charged == earlier.charged == 0
    assert await gw.db.fetchval("SELECT count(*) FROM ledger_entries") == entries
    await assert_exact(gw, at)


async def test_concurrent_ticks_in_one_process(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permissions = [await gw.funded_permission("5", "1") for _ in range(3)]
    for permission in permissions:
        await start_sessions(gw, vendor["vendor_id"], permission, 4)
    t0 = await gw.db.fetchval("SELECT max(started_at) FROM sessions")
    moments = [t0 + timedelta(seconds=s) for s in (100, 100, 250, 250, 400, 399)]
    await asyncio.gather(*(billing_tick(gw.database, at=m, batch_size=1) for m in moments))
    await billing_tick(gw.database, at=t0 + timedelta(seconds=400))
    await assert_exact(gw, t0 + timedelta(seconds=400))


async def _spawn_worker(dsn: str, ticks: int, batch_size: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tick_worker", dsn, str(ticks), str(batch_size),
        stdout=asyncio.subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"started"
    return process


async def _many_sessions(gw: Gateway, database_dsn: str, permissions: int, per_permission: int) -> None:
    """Active sessions straight in SQL (the API path is tested elsewhere), started in the past."""
    vendor = await gw.create_vendor()
    funded = await gw.funded_permission("1000", "1")
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                                     approved_amount, rate_per_hour, duration_days, status, expires_at)
            SELECT gen_random_uuid(), 'zcash', 'ZEC', 8, 'w' || g, sha256(('t' || g)::bytea), 1000000000,
                   100000000 + g, 30, 'active', now() + interval '30 days'
              FROM generate_series(1, $1) g
            """,
            permissions,
        )
        await conn.execute(
            """
            WITH funded AS (
                INSERT INTO payments (funding_source, txid, output_index, asset, amount, permission_id, confirmations,
                                      status)
                SELECT 'zcash', 'seed-' || p.id, 0, 'ZEC', 1000000000, p.id, 10, 'credited'
                  FROM permissions p WHERE p.user_wallet_address LIKE 'w%'
                RETURNING id, permission_id
            ), moved AS (
                UPDATE permissions p SET balance = 1000000000, funded_amount = 1000000000
                  FROM funded f WHERE p.id = f.permission_id RETURNING p.id
            )
            INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, payment_id)
            SELECT permission_id, 'funding', 1000000000, 1000000000, id FROM funded
            """
        )
        await conn.execute(
            """
            INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour, started_at)
            SELECT gen_random_uuid(), sha256(gen_random_uuid()::text::bytea), p.id, $1, p.rate_per_hour,
                   now() - make_interval(secs => 600 + (g * 7) % 500)
              FROM permissions p CROSS JOIN generate_series(1, $2) g
             WHERE p.user_wallet_address LIKE 'w%'
            """,
            vendor["vendor_id"], per_permission,
        )
    finally:
        await conn.close()
    assert funded


@pytest.mark.slow
async def test_two_scheduler_processes_ticking_at_once(gw: Gateway, database_dsn: str) -> None:
    await _many_sessions(gw, database_dsn, permissions=150, per_permission=4)
    workers = [await _spawn_worker(database_dsn, ticks=15, batch_size=20) for _ in range(2)]
    codes = await asyncio.gather(*(asyncio.wait_for(w.wait(), 120) for w in workers))
    assert codes == [0, 0]
    final = await gw.db.fetchval("SELECT now() + interval '1 second'")
    await billing_tick(gw.database, at=final)
    await assert_exact(gw, final)


@pytest.mark.slow
async def test_scheduler_killed_mid_tick_and_restarted(gw: Gateway, database_dsn: str) -> None:
    await _many_sessions(gw, database_dsn, permissions=300, per_permission=3)
    worker = await _spawn_worker(database_dsn, ticks=0, batch_size=5)
    for _ in range(3000):  # wait until it has committed some batches, not all
        if await gw.db.fetchval("SELECT count(*) FROM live_sessions WHERE charged_amount > 0") >= 50:
            break
        await asyncio.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(worker.wait(), 30) == -signal.SIGKILL
    partial = await gw.db.fetchval("SELECT count(*) FROM live_sessions WHERE charged_amount > 0")
    assert partial >= 50
    restarted = await _spawn_worker(database_dsn, ticks=1, batch_size=50)
    assert await asyncio.wait_for(restarted.wait(), 60) == 0
    final = await gw.db.fetchval("SELECT now() + interval '1 second'")
    await billing_tick(gw.database, at=final)
    await assert_exact(gw, final)


async def test_exhaustion_mid_interval_ends_the_session(gw: Gateway) -> None:
    vendor = await gw.create_vendor("no-credit")
    permission = await gw.funded_permission("1", "1")
    [session] = await start_sessions(gw, vendor["vendor_id"], permission, 1)
    t0 = await started_at(gw, session["session_id"])
    await billing_tick(gw.database, at=t0 + timedelta(minutes=30))
    result = await billing_tick(gw.database, at=t0 + timedelta(minutes=90))
    assert result.charged == ZAT // 2 and result.sessions_ended == 1
    row = await gw.db.fetchrow("SELECT status, charged_amount, uncovered_amount, ended_at FROM live_sessions")
    assert row["status"] == "exhausted" and row["charged_amount"] == ZAT
    assert row["uncovered_amount"] == ZAT // 2 and row["ended_at"] == t0 + timedelta(minutes=90)
    assert await gw.db.fetchval("SELECT status FROM permissions WHERE id = $1",
                                permission["permission_id"]) == "exhausted"
    status, ended = await gw.end_session(session["session_code"])
    assert status == 200 and ended["status"] == "exhausted" and ended["amount"] == "1.00000000"
    assert await gw.db.fetchval("SELECT count(*) FROM direct_charges") == 0
    await assert_exact(gw, t0)


async def test_grace_runs_on_a_direct_charge_paid_on_chain(gw: Gateway) -> None:
    status, vendor = await gw.call("POST", "/api/v1/admin/vendors", api_key=gw.settings.admin_api_key,
                                   json={"name": "credit", "direct_charge_grace_seconds": 600})
    assert status == 201
    permission = await gw.funded_permission("1", "1")
    [session] = await start_sessions(gw, vendor["vendor_id"], permission, 1)
    t0 = await started_at(gw, session["session_id"])
    await billing_tick(gw.database, at=t0 + timedelta(minutes=66))  # 1.1 ZEC owed, 1 ZEC held
    row = await gw.db.fetchrow("SELECT status, charged_amount, uncovered_amount FROM live_sessions")
    assert row["status"] == "active" and row["charged_amount"] == ZAT and row["uncovered_amount"] == ZAT // 10
    charge = await gw.db.fetchrow("SELECT status, amount FROM direct_charges")
    assert charge["status"] == "accruing" and charge["amount"] == ZAT // 10
    assert await gw.jobs.allocate_direct_charge_addresses() == 1

    await billing_tick(gw.database, at=t0 + timedelta(minutes=76))  # grace (10 min) over: the session stops
    row = await gw.db.fetchrow("SELECT status, uncovered_amount, ended_at FROM sessions")
    assert row["status"] == "pending_payment" and row["uncovered_amount"] == ZAT * 16 // 60
    status, ended = await gw.end_session(session["session_code"])
    assert status == 200 and ended["status"] == "pending_payment"
    direct = ended["direct_charge"]
    assert direct["status"] == "pending_payment" and direct["amount"] == "0.26666666"
    assert direct["payment_address"].startswith("uregtest1")
    await gw.pay(direct["payment_address"], direct["amount"])
    await gw.mine(2)

    await gw.jobs.watch_payments()
    status, again = await gw.end_session(session["session_code"])
    assert again["status"] == "confirmed" and again["direct_charge"]["status"] == "paid"
    await assert_exact(gw, t0)


async def test_expiry_closes_open_sessions_at_the_expiry_instant(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    [session] = await start_sessions(gw, vendor["vendor_id"], permission, 1)
    t0 = await started_at(gw, session["session_id"])
    await gw.db.execute("UPDATE permissions SET expires_at = $2 WHERE id = $1", permission["permission_id"],
                        t0 + timedelta(minutes=30))
    _charged, expired = await expire_permissions(gw.database, at=t0 + timedelta(minutes=45))
    assert [str(e) for e in expired] == [permission["permission_id"]]
    row = await gw.db.fetchrow("SELECT status, charged_amount, ended_at FROM live_sessions")
    assert row["status"] == "ended" and row["ended_at"] == t0 + timedelta(minutes=30)
    assert row["charged_amount"] == 125_000_000
    expired_row = await gw.db.fetchrow("SELECT status, balance FROM permissions WHERE id = $1",
                                       permission["permission_id"])
    assert expired_row["status"] == "expired" and expired_row["balance"] == 875_000_000
    await assert_exact(gw, t0)
