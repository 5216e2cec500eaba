"""Benchmark: one real billing tick over N active sessions, against a floor measured in the same run.

    .venv/bin/python benchmarks/billing_tick.py --sessions 100000

It seeds N active sessions over N/10 funded permissions in a fresh database, clones it twice, then times
- the tick: `billing.charging.billing_tick` (charges, ledger rows, balances, statuses), and
- the floor: one plain SQL UPDATE applying the same arithmetic (owed now minus charged) to the same rows,
and prints sessions, both timings and their ratio. Uses DATABASE_URL's server, else the local one (or a private
one under .paygo/, like `paygo serve`). Not a timed test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

import asyncpg

from billing.charging import billing_tick
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


async def main(sessions: int) -> None:
    server, embedded = await _server_dsn()
    suffix = uuid.uuid4().hex[:8]
    template, tick_db, floor_db = (f"paygo_bench_{name}_{suffix}" for name in ("seed", "tick", "floor"))
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
        finally:
            await conn.close()
        await create_database(server, tick_db, template=template)
        await create_database(server, floor_db, template=template)

        pool = await create_pool(dsn_for_database(server, tick_db), min_size=1, max_size=2)
        try:
            at = await pool.fetchval("SELECT now()")
            started = time.perf_counter()
            result = await billing_tick(pool, at=at)
            tick_seconds = time.perf_counter() - started
        finally:
            await pool.close()

        floor_conn = await asyncpg.connect(dsn_for_database(server, floor_db))
        try:
            started = time.perf_counter()
            await floor_conn.execute(FLOOR, at)
            floor_seconds = time.perf_counter() - started
        finally:
            await floor_conn.close()
    finally:
        for name in (tick_db, floor_db, template):
            await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()  # type: ignore[attr-defined]

    print(f"sessions:        {seeded}")
    print(f"charged:         {result.sessions} sessions, {result.charged} zatoshi")
    print(f"tick seconds:    {tick_seconds:.3f}")
    print(f"floor seconds:   {floor_seconds:.3f}   (one UPDATE with the same arithmetic)")
    print(f"ratio:           {tick_seconds / floor_seconds:.2f}x the floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().sessions))
