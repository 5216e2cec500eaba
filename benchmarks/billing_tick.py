"""Benchmark: the billing tick over N active sessions against a floor measured in the same run, the storage one
streamed session-hour costs, and the WAL one tick writes.

    .venv/bin/python benchmarks/billing_tick.py --sessions 100000
    .venv/bin/python benchmarks/billing_tick.py --sessions 1000000 --hour-sessions 100000

It seeds N active sessions over N/10 funded permissions in a fresh database, clones it, then measures, each on its
own fresh copy after a CHECKPOINT:
- the tick: `billing.charging.billing_tick` (what each session owes, the greedy allocation, exhaustion, accrual
  in place, settlements that fall due, vendor events), and
- the floor: the same work as one plain statement with no decisions in it (the same arithmetic over the same open
  sessions, the same permission totals updated in place), on one connection, and prints the ratio (the tick
  charges its batches on BILLING_TICK_CONNECTIONS connections at once, so it can beat this floor);
- a simulated hour (`--hour-sessions` of them, default all): 60 ticks a minute apart, measuring how the ledger,
  the audit trail and their indexes grow (bytes per streamed session-hour) and the WAL each tick writes.
Uses DATABASE_URL's server, else the local one (or a private one under .paygo/, like `paygo serve`). Not a timed
test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from billing.charging import DEFAULT_TICK_CONNECTIONS, ChargeResult, billing_tick
from billing.db import create_pool
from billing.schema import migrate
from billing.unit_of_work import Database
from paygo.embedded import create_database, drop_database, dsn_for_database, find_or_start_postgres

SESSIONS_PER_PERMISSION = 10

SEED = """
INSERT INTO vendors (id, name) VALUES ('00000000-0000-0000-0000-0000000000b1', 'bench');
INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                         approved_amount, rate_per_hour, duration_days, status, balance, funded_amount, expires_at)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, 'zcash', 'ZEC', 8, 'bench-wallet-' || g,
       sha256(('bench-token-' || g)::bytea), 100000000000, 250000000 + g, 30, 'active', 100000000000,
       100000000000, now() + interval '30 days'
  FROM generate_series(1, $1) g;
INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour, started_at)
SELECT gen_random_uuid(), sha256(('bench-session-' || p.id || '-' || g)::bytea), p.id,
       '00000000-0000-0000-0000-0000000000b1', p.rate_per_hour, now() - make_interval(secs => 60 + g * 13)
  FROM permissions p CROSS JOIN generate_series(1, $1) g;
UPDATE permissions SET stops_at = permission_stops_at(id);
VACUUM ANALYZE;
"""

FLOOR = """
WITH totals AS (
    SELECT s.permission_id, count(*) AS sessions,
           sum(greatest(session_owed(s.rate_per_hour, s.started_at, $1), s.charged_amount) - s.settled_amount)
               AS accrued
      FROM sessions s WHERE s.status = 'active'
     GROUP BY s.permission_id
),
permission_updates AS (
    UPDATE permissions p
       SET balance = p.balance + p.accrued_amount - t.accrued, accrued_amount = t.accrued,
           charged_amount = p.charged_amount - p.accrued_amount + t.accrued, accrued_at = $1
      FROM totals t WHERE p.id = t.permission_id
    RETURNING 1
)
SELECT (SELECT coalesce(sum(sessions), 0)::bigint FROM totals) AS sessions,
       (SELECT coalesce(sum(t.accrued - p.accrued_amount), 0)
          FROM totals t JOIN permissions p ON p.id = t.permission_id) AS charged,
       (SELECT count(*) FROM permission_updates) AS permissions
"""

GROWING_RELATIONS = "SELECT pg_total_relation_size('ledger_entries') + pg_total_relation_size('permission_changes')"


async def _server_dsn() -> tuple[str, object | None]:
    if os.environ.get("DATABASE_URL"):
        return dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    embedded = await find_or_start_postgres(Path(".paygo").resolve(), "postgres")  # noqa: ASYNC240 - start-up
    return embedded.dsn, embedded


async def _checkpointed(dsn: str) -> asyncpg.Connection:
    """A connection to a fresh copy, after a CHECKPOINT so that no run pays for writing out another's pages."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("CHECKPOINT")
    return conn


async def _timed_statement(dsn: str, statement: str, at: datetime) -> tuple[float, asyncpg.Record | None]:
    conn = await _checkpointed(dsn)
    try:
        started = time.perf_counter()
        record = await conn.fetchrow(statement, at)
        return time.perf_counter() - started, record
    finally:
        await conn.close()


async def _timed_tick(dsn: str, at: datetime, connections: int) -> tuple[float, ChargeResult]:
    await (await _checkpointed(dsn)).close()
    pool = await create_pool(dsn, min_size=connections, max_size=connections)
    try:
        started = time.perf_counter()
        result = await billing_tick(Database(pool), at=at, connections=connections)
        return time.perf_counter() - started, result
    finally:
        await pool.close()


@dataclass(frozen=True)
class HourFigures:
    sessions: int
    grown_bytes: int  # ledger, audit trail and their indexes
    wal_bytes_per_tick: int
    seconds_per_tick: float


async def _simulated_hour(dsn: str, at: datetime) -> HourFigures:
    """60 ticks a minute apart: what the ledger and the audit trail grow by, and the WAL each tick writes."""
    conn = await _checkpointed(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=DEFAULT_TICK_CONNECTIONS)
    try:
        sessions = await conn.fetchval("SELECT count(*) FROM sessions WHERE status = 'active'")
        await conn.execute("VACUUM ANALYZE")
        before = await conn.fetchval(GROWING_RELATIONS)
        wal_start = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        started = time.perf_counter()
        for minute in range(1, 61):
            await billing_tick(Database(pool), at=at + timedelta(minutes=minute))
        elapsed = time.perf_counter() - started
        wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", wal_start)
        after = await conn.fetchval(GROWING_RELATIONS)
        return HourFigures(sessions, after - before, int(wal) // 60, elapsed / 60)
    finally:
        await pool.close()
        await conn.close()


async def seed_sessions(conn: asyncpg.Connection, sessions: int) -> None:
    """N active sessions over N/10 funded permissions (a migrated database), with their stop instants."""
    vendors, permission_rows, session_rows, stop_instants, vacuum = SEED.strip().split(";\n")
    await conn.execute(vendors)
    await conn.execute(permission_rows, max(1, sessions // SESSIONS_PER_PERMISSION))
    await conn.execute(session_rows, SESSIONS_PER_PERMISSION)
    await conn.execute(stop_instants)
    await conn.execute(vacuum)  # as autovacuum leaves a gateway that has run a while


async def _seed(server: str, name: str, sessions: int) -> tuple[int, datetime]:
    await create_database(server, name)
    conn = await asyncpg.connect(dsn_for_database(server, name))
    try:
        await migrate(conn)
        await seed_sessions(conn, sessions)
        return await conn.fetchval("SELECT count(*) FROM sessions WHERE status = 'active'"), await conn.fetchval(
            "SELECT now()")
    finally:
        await conn.close()


async def main(sessions: int, hour_sessions: int, connections: int) -> None:
    server, embedded = await _server_dsn()
    suffix = uuid.uuid4().hex[:8]
    template, tick_db, floor_db, hour_template, hour_db = (
        f"paygo_bench_{name}_{suffix}" for name in ("seed", "tick", "floor", "hourseed", "hour")
    )
    try:
        seeded, at = await _seed(server, template, sessions)
        for name in (tick_db, floor_db):
            await create_database(server, name, template=template)
        tick_seconds, result = await _timed_tick(dsn_for_database(server, tick_db), at, connections)
        floor_seconds, floor = await _timed_statement(dsn_for_database(server, floor_db), FLOOR, at)
        for name in (tick_db, floor_db):
            await drop_database(server, name)
        if hour_sessions == sessions:
            await create_database(server, hour_db, template=template)
        else:
            await drop_database(server, template)
            _, at = await _seed(server, hour_template, hour_sessions)
            await create_database(server, hour_db, template=hour_template)
        hour = await _simulated_hour(dsn_for_database(server, hour_db), at)
    finally:
        for name in (tick_db, floor_db, hour_db, hour_template, template):
            await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()  # type: ignore[attr-defined]

    assert floor is not None
    print(f"sessions:               {seeded} (over {max(1, sessions // SESSIONS_PER_PERMISSION)} permissions)")
    print(f"tick:                   {tick_seconds:.3f} s  ({result.sessions} sessions, {result.charged} zatoshi, "
          f"{connections} connections)")
    print(f"floor:                  {floor_seconds:.3f} s  ({floor['sessions']} sessions, {floor['charged']} "
          "zatoshi: the same work in one plain statement)")
    print(f"ratio:                  {tick_seconds / floor_seconds:.2f}x the floor")
    print(f"simulated hour:         {hour.sessions} sessions, 60 ticks, {hour.seconds_per_tick:.3f} s per tick")
    print(f"bytes per session-hour: {hour.grown_bytes / hour.sessions:.0f}  (ledger + audit trail + their indexes)")
    print(f"WAL per tick:           {hour.wal_bytes_per_tick / 1e6:.1f} MB  "
          f"({hour.wal_bytes_per_tick / hour.sessions:.0f} bytes per session)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--hour-sessions", type=int, default=None,
                        help="sessions in the simulated hour (default: --sessions)")
    parser.add_argument("--connections", type=int, default=DEFAULT_TICK_CONNECTIONS,
                        help="the tick's connections (BILLING_TICK_CONNECTIONS; default %(default)s)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sessions, arguments.hour_sessions or arguments.sessions, arguments.connections))
