"""Benchmark: how long sessions stream after their permission's money ran out (the exhaustion overrun).

    .venv/bin/python benchmarks/hard_stop.py --permissions 2000

It seeds permissions with random balances and rates, each with one to three sessions started at random instants,
computes in Python the exact second each permission runs dry (the first instant its sessions owe its balance),
then drives the scheduler's clock through the next hour, second by second, in two fresh copies:
- the hard stop (`billing.charging.stop_due` every second, as `HARD_STOP_INTERVAL_SECONDS=1` runs it, plus the
  billing tick every minute), and
- the floor it replaces: the billing tick alone every `BILLING_INTERVAL_SECONDS` (60 s), which noticed a permission
  running dry only at the next tick;
and prints the overrun (stop instant minus the exact instant: max, p99, p50) of each and their ratio, plus what
the sessions streamed uncovered. Not a timed test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from billing.charging import billing_tick, stop_due
from billing.db import create_pool
from billing.schema import migrate
from billing.unit_of_work import Database
from kernel.money import owed_for
from paygo.embedded import create_database, drop_database, dsn_for_database, find_or_start_postgres

HORIZON_SECONDS = 3600
TICK_SECONDS = 60


async def _server_dsn() -> tuple[str, Any]:
    if os.environ.get("DATABASE_URL"):
        return dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    embedded = await find_or_start_postgres(Path(".paygo").resolve(), "postgres")  # noqa: ASYNC240 - start-up
    return embedded.dsn, embedded


async def _seed(dsn: str, permissions: int, rng: random.Random) -> datetime:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        t0: datetime = await conn.fetchval("SELECT date_trunc('second', now())")
        await conn.execute("INSERT INTO vendors (id, name) VALUES ('00000000-0000-0000-0000-0000000000b1', 'bench')")
        permission_rows, session_rows = [], []
        for n in range(permissions):
            pid = uuid.uuid4()
            rates = [rng.randrange(10_000, 500_000_000) for _ in range(rng.randrange(1, 4))]  # zatoshi per hour
            balance = sum(rates) * rng.randrange(60, 3500) // 3600  # runs dry within the hour
            permission_rows.append((pid, f"bench-{n}", uuid.uuid4().bytes, balance, max(rates),
                                    t0 + timedelta(days=30)))
            for rate in rates:
                started = t0 + timedelta(microseconds=rng.randrange(1_000_000))
                session_rows.append((uuid.uuid4(), uuid.uuid4().bytes, pid, rate, started))
        await conn.executemany(
            """
            INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                                     approved_amount, rate_per_hour, duration_days, status, balance, funded_amount,
                                     expires_at)
            VALUES ($1, 'zcash', 'ZEC', 8, $2, $3, $4, $5, 30, 'active', $4, $4, $6)
            """, permission_rows)
        await conn.executemany(
            """
            INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour, started_at)
            VALUES ($1, $2, $3, '00000000-0000-0000-0000-0000000000b1', $4, $5)
            """, session_rows)
        await conn.execute("UPDATE permissions SET stops_at = permission_stops_at(id)")
        await conn.execute("ANALYZE")
        return t0
    finally:
        await conn.close()


async def _exact_stops(dsn: str, t0: datetime) -> dict[uuid.UUID, datetime]:
    """The first second after t0 at which each permission's sessions owe its whole balance."""
    conn = await asyncpg.connect(dsn)
    try:
        balances = {r["id"]: r["balance"] for r in await conn.fetch("SELECT id, balance FROM permissions")}
        sessions: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for row in await conn.fetch("SELECT permission_id, rate_per_hour, started_at FROM sessions"):
            sessions.setdefault(row["permission_id"], []).append(row)
    finally:
        await conn.close()
    stops = {}
    for pid, rows in sessions.items():
        low, high = 0, HORIZON_SECONDS * 2
        while low < high:  # owed grows with time: bisect on whole seconds
            middle = (low + high) // 2
            moment = t0 + timedelta(seconds=middle)
            owed = sum(owed_for(r["rate_per_hour"], int((moment - r["started_at"]).total_seconds())) for r in rows)
            low, high = (middle + 1, high) if owed < balances[pid] else (low, middle)
        stops[pid] = t0 + timedelta(seconds=low)
    return stops


async def _run(dsn: str, t0: datetime, *, hard_stop: bool) -> dict[uuid.UUID, datetime]:
    """Drive the jobs through the horizon; returns when each permission's sessions were stopped."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    db = Database(pool)
    try:
        for second in range(1, HORIZON_SECONDS + 1):
            moment = t0 + timedelta(seconds=second)
            if hard_stop:
                await stop_due(db, at=moment)
            if second % TICK_SECONDS == 0:
                await billing_tick(db, at=moment)
        rows = await pool.fetch("SELECT permission_id, min(ended_at) AS ended FROM sessions "
                                "WHERE status <> 'active' GROUP BY permission_id")
        return {r["permission_id"]: r["ended"] for r in rows}
    finally:
        await pool.close()


def _summary(stopped: dict[uuid.UUID, datetime], exact: dict[uuid.UUID, datetime]) -> tuple[float, float, float]:
    overruns = sorted((stopped[pid] - exact[pid]).total_seconds() for pid in exact
                      if pid in stopped and exact[pid] <= max(stopped.values()))
    if not overruns:
        return 0.0, 0.0, 0.0
    return overruns[-1], overruns[int(len(overruns) * 0.99) - 1], overruns[len(overruns) // 2]


async def main(permissions: int, seed: int) -> None:
    server, embedded = await _server_dsn()
    names = [f"paygo_bench_stop_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("seed", "hard", "tick")]
    try:
        await create_database(server, names[0])
        t0 = await _seed(dsn_for_database(server, names[0]), permissions, random.Random(seed))
        exact = await _exact_stops(dsn_for_database(server, names[0]), t0)
        for name in names[1:]:
            await create_database(server, name, template=names[0])
        hard = await _run(dsn_for_database(server, names[1]), t0, hard_stop=True)
        tick_only = await _run(dsn_for_database(server, names[2]), t0, hard_stop=False)
        uncovered = await (await asyncpg.connect(dsn_for_database(server, names[1]))).fetchval(
            "SELECT max(uncovered) FROM (SELECT sum(uncovered_amount) * 3600 / sum(rate_per_hour) AS uncovered "
            "FROM sessions GROUP BY permission_id) per_permission")
    finally:
        for name in names:
            await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()
    hard_max, hard_p99, hard_p50 = _summary(hard, exact)
    tick_max, tick_p99, tick_p50 = _summary(tick_only, exact)
    print(f"permissions:        {permissions} ({len(hard)} ran dry within the hour)")
    print(f"hard stop overrun:  max {hard_max:.0f} s, p99 {hard_p99:.0f} s, p50 {hard_p50:.0f} s")
    print(f"tick-only overrun:  max {tick_max:.0f} s, p99 {tick_p99:.0f} s, p50 {tick_p50:.0f} s   (the floor: "
          f"a {TICK_SECONDS} s billing tick alone)")
    print(f"ratio (max):        {hard_max / tick_max if tick_max else 0:.3f}x")
    print(f"uncovered at the stop:  at most {uncovered or 0:.2f} s of a permission's total rate")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permissions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.permissions, arguments.seed))
