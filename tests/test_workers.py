"""`paygo serve --workers 2` as operators run it: two processes listen on one port, the scheduler runs in one place
(not once per worker), /metrics counts every process's requests and ticks, and SIGTERM drains a request in flight."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from billing.secrets import secret_hash
from chains.zcash_address import ZcashNetwork, encode_transparent
from tests.conftest import ADMIN_KEY
from tests.test_cli import PAYGO, clean_env, free_port

SOME_JOBS = {"billing_tick", "hard_stop", "expiry", "payment_watcher", "reminders", "outbox_delivery", "prune"}
HOUR = "3600"  # every job runs once, at start, during the test


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process is gone
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def listening_on(port: int, pids: set[int]) -> dict[int, set[str]]:
    """Which of `pids` hold a listening TCP socket on 127.0.0.1:`port` (its inode), from /proc."""
    wanted = f"0100007F:{port:04X}"
    inodes = {fields[9] for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
              if fields[1] == wanted and fields[3] == "0A"}
    holders: dict[int, set[str]] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holders.setdefault(pid, set()).add(target[8:-1])
    return holders


async def seed_permission(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, str, str]:
    """A vendor and an active, funded permission written directly: (vendor, permission, token, wallet)."""
    vendor_id, permission_id, token = uuid.uuid4(), uuid.uuid4(), "pgp_" + secrets.token_urlsafe(32)
    wallet = encode_transparent(ZcashNetwork.REGTEST, "p2pkh", secrets.token_bytes(20))
    await conn.execute("INSERT INTO vendors (id, name) VALUES ($1, 'workers')", vendor_id)
    await conn.execute(
        """
        INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                                 approved_amount, rate_per_hour, duration_days, status, balance, funded_amount,
                                 activated_at, expires_at)
        VALUES ($1, 'zcash', 'ZEC', 8, $2, $3, 1000000000, 250000000, 30, 'active', 1000000000, 1000000000, now(),
                now() + interval '30 days')
        """,
        permission_id, wallet, secret_hash(token))
    return vendor_id, permission_id, token, wallet


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within 30 s: {what}")


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_two_workers_share_the_port_run_the_scheduler_once_count_metrics_together_and_drain(
        database_dsn: str) -> None:
    port = free_port()
    env = clean_env(DATABASE_URL=database_dsn, ADMIN_API_KEY=ADMIN_KEY, BILLING_INTERVAL_SECONDS=HOUR,
                    EXPIRY_INTERVAL_SECONDS=HOUR, WATCHER_INTERVAL_SECONDS=HOUR, HARD_STOP_INTERVAL_SECONDS=HOUR,
                    PRUNE_INTERVAL_SECONDS=HOUR)
    process = await asyncio.create_subprocess_exec(*PAYGO, "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}",
                                                   env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None
    db = await asyncpg.connect(database_dsn)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        assert f"listening on http://127.0.0.1:{port} (2 worker processes and the scheduler in one more)" in line

        children = children_of(process.pid)
        listeners = listening_on(port, children)
        assert len(listeners) == 2 and len(set.union(*listeners.values())) == 2  # two processes, a socket each

        async def every_job_ran() -> bool:  # the scheduler process runs every job once at start
            jobs = await db.fetch("SELECT job_name, last_succeeded_at FROM job_runs")
            return {job["job_name"] for job in jobs} >= SOME_JOBS and all(job["last_succeeded_at"] for job in jobs)

        await eventually(every_job_ran, "every job has run")
        jobs = await db.fetch("SELECT job_name, runs, last_runner FROM job_runs")
        assert all(job["runs"] == 1 for job in jobs), jobs
        [runner] = {job["last_runner"] for job in jobs}
        runner_pid = int(runner.rsplit(":", 1)[1])
        assert runner_pid in children and runner_pid not in listeners  # a process of its own, not a worker

        base = f"http://127.0.0.1:{port}"
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/health/live") as reply:
                assert reply.status == 200
        async with (aiohttp.ClientSession() as http,
                    http.get(f"{base}/metrics", headers={"X-API-Key": ADMIN_KEY}) as reply):
            samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                       for family in text_string_to_metric_families(await reply.text())
                       for sample in family.samples}
        live = sum(value for (name, labels), value in samples.items()
                   if name == "paygo_http_request_duration_seconds_count"
                   and ("route", "/api/v1/health/live") in labels)
        assert live == 20
        assert samples[("paygo_scheduler_ticks_total", (("job", "billing_tick"), ("outcome", "ok")))] == 1
        assert samples[("paygo_database_up", ())] == 1

        # A request waits on a row lock when SIGTERM arrives: the port closes, the request still completes.
        vendor_id, permission_id, token, wallet = await seed_permission(db)
        async with aiohttp.ClientSession() as http:
            async with db.transaction():
                await db.execute("SELECT 1 FROM permissions WHERE id = $1 FOR UPDATE", permission_id)
                in_flight = asyncio.create_task(http.post(
                    f"{base}/api/v1/sessions", json={"user_wallet_address": wallet, "vendor_id": str(vendor_id)},
                    headers={"Authorization": f"Bearer {token}"}))
                await eventually(lambda: db.fetchval(
                    "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"), "the request waits on the lock")
                process.send_signal(signal.SIGTERM)
                await eventually(lambda: refused(port), "the workers stop listening")
                assert not in_flight.done()
            reply = await asyncio.wait_for(in_flight, 30)  # the lock is gone: the request finishes and is answered
            assert reply.status == 201, await reply.text()
            reply.release()
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert await db.fetchval("SELECT count(*) FROM sessions WHERE permission_id = $1", permission_id) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await db.close()
