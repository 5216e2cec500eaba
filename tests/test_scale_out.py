"""Scale-out on real engines: the whole seed flow and a billing tick through a real PgBouncer in transaction pooling
mode, and the reads that may lag served by a real streaming replica, falling back to the primary when it is down."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg

from paygo.embedded import EmbeddedPgBouncer
from regtest.zcash_node import RunningNode
from tests.conftest import ADMIN_KEY, Gateway
from tests.services import ReplicatedDatabase


def pgbouncer_transactions(bouncer: EmbeddedPgBouncer, database: str) -> int:
    """Transactions PgBouncer has passed to `database` (its admin console speaks the simple protocol only)."""
    psql = shutil.which("psql") or "/usr/bin/psql"
    result = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres", "-d", "pgbouncer",
                             "-AtF", "\t", "-c", "SHOW STATS"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == database:
            return int(fields[1])  # total_xact_count
    return 0


async def test_seed_flow_and_billing_tick_through_pgbouncer(
        make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str], database_dsn: str,
        pgbouncer: EmbeddedPgBouncer) -> None:
    node, password = zcash_regtest
    gw: Gateway = await make_gateway(node, password, DATABASE_URL=pgbouncer.dsn(database_dsn),
                                     DATABASE_DIRECT_URL=database_dsn, DATABASE_STATEMENT_CACHE_SIZE="0")
    database = database_dsn.rsplit("/", 1)[1]
    before = pgbouncer_transactions(pgbouncer, database)

    vendor = await gw.create_vendor()
    permission = await gw.create_permission("10", "360")  # 0.1 ZEC per second
    await gw.pay(permission["payment_address"], "10")
    await gw.mine(2)
    assert (await gw.verify(permission))["status"] == "active"
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201, opened
    await gw.backdate_session(opened["session_id"], 3)
    ticked = await gw.jobs.billing_tick()
    assert ticked.sessions == 1 and ticked.charged >= 3 * 10**7
    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200 and ended["status"] == "confirmed"
    charged = await gw.db.fetchval("SELECT charged_amount FROM live_sessions WHERE id = $1", opened["session_id"])
    assert Decimal(ended["amount"]) * 10**8 == charged and charged >= 3 * 10**7
    assert await gw.db.fetchval("SELECT balance FROM permissions WHERE id = $1",
                                permission["permission_id"]) == 10 * 10**8 - charged
    settled = await gw.db.fetchval("SELECT -sum(amount) FROM ledger_entries WHERE session_id = $1",
                                   opened["session_id"])
    assert settled == charged

    assert pgbouncer_transactions(pgbouncer, database) > before  # the gateway's work went through PgBouncer


async def replayed_everything(primary: asyncpg.Connection, replica: asyncpg.Connection) -> None:
    """Wait until the replica has replayed all the primary wrote so far."""
    target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    for _ in range(400):
        if await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the replica did not catch up within 10 s")


async def test_vendor_reads_come_from_the_replica_and_fall_back_to_the_primary(
        replicated_database: ReplicatedDatabase, make_gateway: Callable[..., Any],
        zcash_regtest: tuple[RunningNode, str]) -> None:
    """The replica is set up first, so that the gateway is closed before its servers stop."""
    node, password = zcash_regtest
    gw: Gateway = await make_gateway(node, password, DATABASE_URL=replicated_database.primary_dsn,
                                     DATABASE_READ_URL=replicated_database.replica_dsn)
    primary = await asyncpg.connect(replicated_database.primary_dsn)
    replica = await asyncpg.connect(replicated_database.replica_dsn)
    try:
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
        vendor = await gw.create_vendor()
        key = vendor["api_key"]
        status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
        assert health["checks"]["read_replica"]["ok"] and health["checks"]["read_replica"]["reads_from"] == "replica"
        assert health["checks"]["read_replica"]["in_recovery"] is True

        # The replica stops replaying: what the primary writes now is not on it.
        await replayed_everything(primary, replica)
        await replica.execute("SELECT pg_wal_replay_pause()")
        permission = await gw.create_permission("10", "2.5")
        await gw.pay(permission["payment_address"], "10")
        await gw.mine(2)
        await gw.verify(permission)
        status, opened = await gw.open_session(permission, vendor["vendor_id"])
        assert status == 201
        status, shown = await gw.call("GET", f"/api/v1/sessions/{opened['session_code']}",
                                      token=permission["permission_token"])
        assert status == 200 and shown["status"] == "active"  # the token holder reads the primary
        status, listed = await gw.call("GET", "/api/v1/vendor/sessions", api_key=key)
        assert status == 200 and listed["sessions"] == []  # the vendor's list is served by the replica

        await replica.execute("SELECT pg_wal_replay_resume()")
        await replayed_everything(primary, replica)
        status, listed = await gw.call("GET", "/api/v1/vendor/sessions", api_key=key)
        assert [row["session_id"] for row in listed["sessions"]] == [opened["session_id"]]

        # The replica goes down: the same reads come from the primary, and health says so.
        await replica.close()
        await replicated_database.replica.stop()
        await gw.end_session(opened["session_code"])
        status, listed = await gw.call("GET", "/api/v1/vendor/sessions", api_key=key)
        assert status == 200 and listed["sessions"][0]["status"] == "ended"
        assert (await gw.call("GET", "/api/v1/vendor/charges/summary", api_key=key))[0] == 200
        status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
        assert status == 200 and health["status"] == "degraded"
        assert health["checks"]["read_replica"] == {"ok": False, "reads_from": "primary",
                                                    "error": health["checks"]["read_replica"]["error"]}
        assert health["checks"]["database"]["ok"]
        metrics = await (await gw.client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})).text()
        assert "paygo_database_up 1.0" in metrics and "paygo_active_sessions 0.0" in metrics
    finally:
        await primary.close()
        if not replica.is_closed():
            await replica.close()


async def test_every_payment_carries_the_permission_whose_shard_holds_it(gw: Gateway) -> None:
    """Sharding by permission needs the permission on every money row: a direct charge's payment names the
    permission whose session ran on credit (its `permission_id`, "funds this permission", stays NULL)."""
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    direct = await gw.db.fetchval(
        """
        WITH s AS (INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour)
                   VALUES (gen_random_uuid(), sha256(random()::text::bytea), $1, $2, 100000000) RETURNING id)
        INSERT INTO direct_charges (session_id, permission_id, funding_source, asset, amount)
        SELECT s.id, $1, 'zcash', 'ZEC', 5 FROM s RETURNING id
        """, permission["permission_id"], vendor["vendor_id"])
    await gw.db.execute(
        "INSERT INTO payments (funding_source, txid, output_index, asset, amount, direct_charge_id, confirmations)"
        " VALUES ('zcash', 'tx-direct', 0, 'ZEC', 5, $1, 1)", direct)
    owners = await gw.db.fetch("SELECT permission_id, direct_charge_id, owner_permission_id FROM payments")
    assert len(owners) == 2 and all(str(row["owner_permission_id"]) == permission["permission_id"] for row in owners)
