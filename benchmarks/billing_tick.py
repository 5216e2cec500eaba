"""Benchmark: one real billing tick over N active sessions, against a floor measured in the same run.

    .venv/bin/python benchmarks/billing_tick.py --sessions 100000

It seeds N active sessions over N/10 funded permissions in a fresh database, clones it twice, then times
- the tick: `billing.charging.billing_tick` (charges, ledger rows, balances, statuses), and
- the floor: the same writes as one plain statement with no decisions in it: the same arithmetic (what each
  session owes at the same instant, up to its permission's expiry, minus what it was charged), the same sessions
  updated, the same ledger rows (with their balance after) and the same permission balances, and
- for reference, the sessions UPDATE alone (the floor this benchmark used first: it writes a third of the rows),
each on its own fresh copy of the seeded database after a CHECKPOINT, and prints sessions, the timings and the
ratio of the tick to the floor. Uses DATABASE_URL's server, else the local one (or a private
one under .paygo/, like `paygo serve`). Not a timed test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg

from billing.charging import billing_tick
from billing.unit_of_work import Database
from billing.db import create_pool
from billing.schema import migrate
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
ANALYZE;
"""

FLOOR = """
WITH owed AS (
    SELECT s.id, s.permission_id, s.started_at, p.balance,
           greatest(div(s.rate_per_hour * greatest(floor(extract(epoch FROM least($1::timestamptz, p.expires_at)
                                                                            - s.started_at)), 0), 3600)
                    - s.charged_amount - s.uncovered_amount, 0) AS due
      FROM sessions s JOIN permissions p ON p.id = s.permission_id
     WHERE s.status = 'active'
),
session_updates AS (
    UPDATE sessions s SET charged_amount = s.charged_amount + o.due FROM owed o WHERE s.id = o.id RETURNING 1
),
ledger AS (
    INSERT INTO ledger_entries (permission_id, kind, amount, balance_after, session_id)
    SELECT o.permission_id, 'charge', -o.due,
           o.balance - sum(o.due) OVER (PARTITION BY o.permission_id ORDER BY o.started_at, o.id), o.id
      FROM owed o
     WHERE o.due > 0
    RETURNING 1
),
permission_updates AS (
    UPDATE permissions p SET balance = p.balance - t.due, charged_amount = p.charged_amount + t.due
      FROM (SELECT permission_id, sum(due) AS due FROM owed GROUP BY permission_id) t
     WHERE p.id = t.permission_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM session_updates) AS sessions, (SELECT coalesce(sum(due), 0) FROM owed) AS charged,
       (SELECT count(*) FROM ledger) AS ledger_entries, (SELECT count(*) FROM permission_updates) AS permissions
"""

SESSIONS_UPDATE_ONLY = """
UPDATE sessions
   SET charged_amount = div(rate_per_hour * floor(extract(epoch FROM $1::timestamptz - started_at)), 3600)
                        - charged_amount
 WHERE status = 'active'
"""


async def _server_dsn() -> tuple[str, object | None]:
    if os.environ.get("DATABASE_URL"):
        return dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    embedded = await find_or_start_postgres(Path(".paygo").resolve(), "postgres")
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


async def main(sessions: int) -> None:
    server, embedded = await _server_dsn()
    suffix = uuid.uuid4().hex[:8]
    template, tick_db, floor_db, update_db = (
        f"paygo_bench_{name}_{suffix}" for name in ("seed", "tick", "floor", "update")
    )
    permissions = max(1, sessions // SESSIONS_PER_PERMISSION)
    try:
        await create_database(server, template)
        conn = await asyncpg.connect(dsn_for_database(server, template))
        try:
            await migrate(conn)
            vendors, permission_rows, session_rows, analyze = SEED.strip().split(";\n")
            await conn.execute(vendors)
            await conn.execute(permission_rows, permissions)
            await conn.execute(session_rows, SESSIONS_PER_PERMISSION)
            await conn.execute(analyze)
            seeded = await conn.fetchval("SELECT count(*) FROM sessions WHERE status = 'active'")
            at = await conn.fetchval("SELECT now()")
        finally:
            await conn.close()
        for name in (tick_db, floor_db, update_db):
            await create_database(server, name, template=template)

        await (await _checkpointed(dsn_for_database(server, tick_db))).close()
        pool = await create_pool(dsn_for_database(server, tick_db), min_size=1, max_size=2)
        try:
            started = time.perf_counter()
            result = await billing_tick(Database(pool), at=at)
            tick_seconds = time.perf_counter() - started
        finally:
            await pool.close()

        floor_seconds, floor = await _timed_statement(dsn_for_database(server, floor_db), FLOOR, at)
        update_seconds, _ = await _timed_statement(dsn_for_database(server, update_db), SESSIONS_UPDATE_ONLY, at)
    finally:
        for name in (tick_db, floor_db, update_db, template):
            await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()  # type: ignore[attr-defined]

    assert floor is not None
    print(f"sessions:        {seeded}")
    print(f"charged:         {result.sessions} sessions, {result.charged} zatoshi")
    print(f"floor charged:   {floor['sessions']} sessions, {floor['charged']} zatoshi, "
          f"{floor['ledger_entries']} ledger rows, {floor['permissions']} permissions")
    print(f"tick seconds:    {tick_seconds:.3f}")
    print(f"floor seconds:   {floor_seconds:.3f}   (the same writes in one plain statement)")
    print(f"update seconds:  {update_seconds:.3f}   (the sessions UPDATE alone, for reference)")
    print(f"ratio:           {tick_seconds / floor_seconds:.2f}x the floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().sessions))
