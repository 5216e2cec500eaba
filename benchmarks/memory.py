"""Benchmark: the gateway's memory (RSS) with no active session and with N active sessions.

    .venv/bin/python -m benchmarks.memory --sessions 100000

It starts `paygo serve` (scheduler included, a billing tick every 2 s, the embedded Zcash stand-in) on a fresh
database, reads its resident memory once it serves, seeds N active sessions over N/10 funded permissions with
plain SQL (as `benchmarks/billing_tick.py` does), lets the billing tick and the hard stop run over them for a few
ticks, and reads the resident memory again. The floor is the first reading: the money engine keeps nothing per
session in memory (every tick works in batches of permissions in PostgreSQL), so the ratio should stay near 1.
Not a timed test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from benchmarks.billing_tick import seed_sessions
from paygo.embedded import create_database, drop_database, dsn_for_database, find_or_start_postgres

TICKS_TO_WATCH = 5


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _ticks(conn: asyncpg.Connection) -> int:
    runs: int = await conn.fetchval("SELECT coalesce(max(runs), 0) FROM job_runs WHERE job_name = 'billing_tick'")
    return runs


async def _wait_for_ticks(conn: asyncpg.Connection, count: int) -> None:
    """Until the gateway's scheduler (another process) has run `count` more billing ticks."""
    target = await _ticks(conn) + count
    while await _ticks(conn) < target:  # noqa: ASYNC110 - another process writes job_runs
        await asyncio.sleep(0.5)


async def main(sessions: int) -> None:
    if os.environ.get("DATABASE_URL"):
        server, embedded = dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    else:
        embedded = await find_or_start_postgres(Path(".paygo").resolve(), "postgres")  # noqa: ASYNC240 - start-up
        server = embedded.dsn
    name = f"paygo_bench_memory_{uuid.uuid4().hex[:8]}"
    await create_database(server, name)
    dsn = dsn_for_database(server, name)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "BILLING_INTERVAL_SECONDS": "2", "LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paygo.cli", "serve", "--listen", f"127.0.0.1:{port}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    conn: asyncpg.Connection | None = None
    try:
        assert process.stdout is not None
        while b"listening" not in await asyncio.wait_for(process.stdout.readline(), 60):
            pass
        conn = await asyncpg.connect(dsn)
        await _wait_for_ticks(conn, 2)
        idle = _rss_kib(process.pid)
        await seed_sessions(conn, sessions)
        started = time.perf_counter()
        await _wait_for_ticks(conn, TICKS_TO_WATCH)
        busy = _rss_kib(process.pid)
        active = await conn.fetchval("SELECT count(*) FROM sessions WHERE status = 'active'")
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        await process.wait()
        if conn is not None:
            await conn.close()
        await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()
    print(f"RSS with 0 active sessions:       {idle / 1024:.1f} MiB   (the floor)")
    print(f"RSS with {active} active sessions: {busy / 1024:.1f} MiB   after {TICKS_TO_WATCH} ticks in "
          f"{elapsed:.0f} s")
    print(f"ratio:                            {busy / idle:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().sessions))
