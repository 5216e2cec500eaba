"""Load benchmark: open and end streaming sessions over real HTTP, against two floors measured in the same run.

    .venv/bin/python benchmarks/api_load.py                      # concurrency 64 for 20 s, everything local
    .venv/bin/python benchmarks/api_load.py --url http://127.0.0.1:8080 --database-url postgresql://...

One operation is one session opened (`POST /api/v1/sessions`) and ended (`POST /api/v1/sessions/end`). By default
the benchmark makes a fresh database on the local PostgreSQL (or a private one under .paygo/), seeds a vendor and
`--permissions` funded permissions directly in SQL (each client task rotates over its own share of them, so
concurrent sessions do not queue on one permission row), starts `paygo serve --no-scheduler` on embedded defaults
on a free port of 127.0.0.1, and afterwards stops it and drops the database. It measures, each at the same
concurrency and for the same time:
- the gateway, over HTTP;
- the SQL floor: the statements an open and an end must run (lock the permission, insert the session; lock the
  permission, end and charge the session), by raw asyncpg on a pool as large as the gateway's;
- a bare aiohttp app in a subprocess answering the same two routes with a constant, hit by the same client;
- with `--contended-seconds`, the gateway and the floor again with every task on one single permission.
It prints operations per second, request p50/p99, errors, the ratios to the floors, and the CPU share of the load
generator, which runs in its own process(es) so that it does not share the gateway's event loop (above ~90% it is
the bottleneck: add `--client-processes`). Loopback only, bounded by the clock. Not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.db import create_pool  # noqa: E402
from billing.schema import migrate  # noqa: E402
from billing.secrets import secret_hash  # noqa: E402
from chains.zcash_address import ZcashNetwork, encode_transparent  # noqa: E402
from paygo.embedded import (  # noqa: E402
    create_database,
    drop_database,
    dsn_for_database,
    find_or_start_postgres,
)

GATEWAY_POOL_SIZE = 20  # billing.db.create_pool's default max_size, which the gateway uses
WALLET = encode_transparent(ZcashNetwork.REGTEST, "p2pkh", bytes(range(20)))
VENDOR_ID = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
START_TIMEOUT_SECONDS = 60

SEED_VENDOR = "INSERT INTO vendors (id, name) VALUES ($1, 'load-benchmark')"
SEED_PERMISSIONS = """
INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash, approved_amount,
                         rate_per_hour, duration_days, status, balance, funded_amount, activated_at, expires_at)
SELECT id, 'zcash', 'ZEC', 8, $2, token_hash, 10000000000000, 250000000, 30, 'active', 10000000000000,
       10000000000000, now(), now() + interval '30 days'
  FROM unnest($1::uuid[], $3::bytea[]) AS seed (id, token_hash)
"""

# The SQL floor: what an open and an end must write, with the permission lock that makes each of them safe.
FLOOR_LOCK = "SELECT 1 FROM permissions WHERE id = $1 FOR UPDATE"
FLOOR_OPEN = """
INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour) VALUES ($1, $2, $3, $4, 250000000)
"""
FLOOR_END = """
UPDATE sessions
   SET status = 'ended', ended_at = now(),
       charged_amount = div(rate_per_hour * floor(extract(epoch FROM now() - started_at)), 3600)
 WHERE id = $1 AND status = 'active'
"""

BARE_APP = """
from aiohttp import web
async def open_session(request):
    await request.read()
    return web.json_response({"session_code": "sc_bare", "status": "active"}, status=201)
async def end_session(request):
    await request.read()
    return web.json_response({"status": "ended"})
app = web.Application()
app.add_routes([web.post("/api/v1/sessions", open_session), web.post("/api/v1/sessions/end", end_session)])
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=lambda *_: print("ready", flush=True))
"""


@dataclass
class Tally:
    """What one measured run did: operations (open + end), request latencies in seconds, errors by kind."""

    seconds: float = 0.0
    operations: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0
    client_processes: int = 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def merge(self, other: Tally) -> None:
        self.seconds = max(self.seconds, other.seconds)
        self.operations += other.operations
        self.latencies.extend(other.latencies)
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        self.client_cpu_seconds += other.client_cpu_seconds

    @property
    def ops_per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=1000)[round(fraction * 1000) - 1] * 1000

    def summary(self) -> str:
        errors = sum(self.errors.values())
        detail = f" {dict(sorted(self.errors.items()))}" if errors else ""
        return (f"{self.ops_per_second:8.1f} ops/s  p50 {self.percentile_ms(0.5):6.2f} ms  "
                f"p99 {self.percentile_ms(0.99):6.2f} ms  errors {errors}{detail}")

    def client_cpu_share(self) -> float:
        """CPU time of the load generator per wall second and process: near 1.0 means it is the bottleneck."""
        return self.client_cpu_seconds / (self.seconds * self.client_processes) if self.seconds else 0.0


# ---------------------------------------------------------------------------------------------- HTTP load generator

async def _http_task(http: aiohttp.ClientSession, base: str, tokens: list[str], deadline: float,
                     tally: Tally) -> None:
    """Open and end sessions until the deadline, rotating over this task's permission tokens."""
    loop = asyncio.get_running_loop()
    turn = 0
    while loop.time() < deadline:
        token = tokens[turn % len(tokens)]
        turn += 1
        started = loop.time()
        try:
            async with http.post(f"{base}/api/v1/sessions", json={"user_wallet_address": WALLET,
                                                                  "vendor_id": str(VENDOR_ID)},
                                 headers={"Authorization": f"Bearer {token}"}) as response:
                body = await response.json()
                if response.status != 201:
                    tally.error(f"open {response.status} {body.get('error', {}).get('code')}")
                    continue
            opened = loop.time()
            tally.latencies.append(opened - started)
            async with http.post(f"{base}/api/v1/sessions/end",
                                 json={"session_code": body["session_code"]}) as response:
                ended = await response.json()
                if response.status != 200:
                    tally.error(f"end {response.status} {ended.get('error', {}).get('code')}")
                    continue
            tally.latencies.append(loop.time() - opened)
            tally.operations += 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.error(type(exc).__name__)


async def _http_load(base: str, task_tokens: list[list[str]], seconds: float) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=len(task_tokens), force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        loop = asyncio.get_running_loop()
        cpu_started, wall_started = time.process_time(), loop.time()
        deadline = wall_started + seconds
        await asyncio.gather(*(_http_task(http, base, tokens, deadline, tally) for tokens in task_tokens))
        tally.seconds = loop.time() - wall_started
        tally.client_cpu_seconds = time.process_time() - cpu_started
    return tally


def _http_load_process(base: str, task_tokens: list[list[str]], seconds: float, results: multiprocessing.Queue
                       ) -> None:
    results.put(asyncio.run(_http_load(base, task_tokens, seconds)))


def run_http_load(base: str, task_tokens: list[list[str]], seconds: float, processes: int) -> Tally:
    """The HTTP load, from `processes` separate processes sharing the tasks, so the client does not compete with
    the gateway for one event loop (it still competes for the machine's cores)."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_http_load_process,
                               args=(base, task_tokens[index::processes], seconds, results))
               for index in range(processes)]
    for worker in workers:
        worker.start()
    tally = Tally(client_processes=processes)
    for _ in workers:
        tally.merge(results.get(timeout=seconds + 120))
    for worker in workers:
        worker.join()
    return tally


# ------------------------------------------------------------------------------------------------------- SQL floor

async def _floor_task(pool: asyncpg.Pool, permission_ids: list[uuid.UUID], deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    turn = 0
    while loop.time() < deadline:
        permission_id = permission_ids[turn % len(permission_ids)]
        turn += 1
        session_id = uuid.uuid4()
        started = loop.time()
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(FLOOR_LOCK, permission_id)
                await conn.execute(FLOOR_OPEN, session_id, secrets.token_bytes(32), permission_id, VENDOR_ID)
            opened = loop.time()
            tally.latencies.append(opened - started)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(FLOOR_LOCK, permission_id)
                await conn.execute(FLOOR_END, session_id)
            tally.latencies.append(loop.time() - opened)
            tally.operations += 1
        except asyncpg.PostgresError as exc:
            tally.error(type(exc).__name__)


async def run_sql_floor(dsn: str, task_permissions: list[list[uuid.UUID]], seconds: float) -> Tally:
    tally = Tally()
    pool = await create_pool(dsn, min_size=GATEWAY_POOL_SIZE, max_size=GATEWAY_POOL_SIZE)
    try:
        loop = asyncio.get_running_loop()
        cpu_started, wall_started = time.process_time(), loop.time()
        deadline = wall_started + seconds
        await asyncio.gather(*(_floor_task(pool, ids, deadline, tally) for ids in task_permissions))
        tally.seconds = loop.time() - wall_started
        tally.client_cpu_seconds = time.process_time() - cpu_started
    finally:
        await pool.close()
    return tally


# ---------------------------------------------------------------------------------------------- servers under test

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _start(command: list[str], ready_text: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Starts a server subprocess and waits for `ready_text` on its standard output."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    reader = asyncio.get_running_loop().run_in_executor(None, _read_until, process.stdout, ready_text)
    try:
        await asyncio.wait_for(reader, START_TIMEOUT_SECONDS)
    except BaseException:
        await _stop(process)
        raise
    return process


def _read_until(stream: object, text: str) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if text in line.decode(errors="replace"):
            return
    raise RuntimeError(f"the server exited before printing {text!r}")


async def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(process.wait, 30)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait)


async def start_gateway(database_url: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "ZCASH_RPC_URL"}}
    # one client opens and ends sessions as fast as it can: lift the rate limits, which would otherwise be measured
    env.update(DATABASE_URL=database_url, LOG_FORMAT="json", RATE_LIMIT_CREATE="10000000/minute",
               RATE_LIMIT_ANONYMOUS="10000000/minute")
    process = await _start([sys.executable, "-m", "paygo.cli", "serve", "--no-scheduler",
                            "--listen", f"127.0.0.1:{port}"], "PayGo gateway listening", env)
    return f"http://127.0.0.1:{port}", process


async def start_bare_app() -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    process = await _start([sys.executable, "-c", BARE_APP.replace("{port}", str(port))], "ready", dict(os.environ))
    return f"http://127.0.0.1:{port}", process


# ------------------------------------------------------------------------------------------------------------ run

async def seed(dsn: str, count: int) -> tuple[list[uuid.UUID], list[str]]:
    """A vendor and `count` active, funded permissions; returns their ids and bearer tokens."""
    ids = [uuid.uuid4() for _ in range(count)]
    tokens = [f"pgt_load_{secrets.token_urlsafe(24)}" for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(SEED_VENDOR, VENDOR_ID)
        await conn.execute(SEED_PERMISSIONS, ids, WALLET, [secret_hash(token) for token in tokens])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return ids, tokens


def shares(items: list[object], tasks: int) -> list[list[object]]:
    """Task i gets items i, i + tasks, ...: disjoint when there are at least as many items as tasks."""
    return [items[index::tasks] or [items[index % len(items)]] for index in range(tasks)]


async def measure(args: argparse.Namespace, base: str, dsn: str, ids: list[uuid.UUID], tokens: list[str]) -> None:
    c, seconds, processes = args.concurrency, args.seconds, args.client_processes
    print(f"concurrency {c}, {seconds:g} s per run, {len(ids)} permissions, "
          f"{processes} client process(es), {os.cpu_count()} cores", flush=True)
    gateway = run_http_load(base, shares(tokens, c), seconds, processes)  # type: ignore[arg-type]
    print(f"gateway      {gateway.summary()}   client CPU {gateway.client_cpu_share():.0%}", flush=True)
    floor = await run_sql_floor(dsn, shares(ids, c), seconds)  # type: ignore[arg-type]
    print(f"SQL floor    {floor.summary()}", flush=True)
    bare_base, bare_process = await start_bare_app()
    try:
        bare = run_http_load(bare_base, [["-"]] * c, seconds, processes)
    finally:
        await _stop(bare_process)
    print(f"bare aiohttp {bare.summary()}   client CPU {bare.client_cpu_share():.0%}", flush=True)
    print(f"gateway / SQL floor:    {gateway.ops_per_second / floor.ops_per_second:.2f}   (target >= 0.5, "
          f"p99 <= 25 ms)")
    print(f"gateway / bare aiohttp: {gateway.ops_per_second / bare.ops_per_second:.2f}")
    if args.contended_seconds > 0:
        one = args.contended_seconds
        contended = run_http_load(base, [[tokens[0]]] * c, one, processes)
        print(f"one permission, gateway   {contended.summary()}", flush=True)
        contended_floor = await run_sql_floor(dsn, [[ids[0]]] * c, one)
        print(f"one permission, SQL floor {contended_floor.summary()}", flush=True)


async def main(args: argparse.Namespace) -> None:
    if args.url:
        if not args.database_url:
            raise SystemExit("--url needs --database-url: the permissions are seeded directly in that database")
        ids, tokens = await seed(args.database_url, args.permissions)
        await measure(args, args.url.rstrip("/"), args.database_url, ids, tokens)
        return
    if os.environ.get("DATABASE_URL"):
        server, embedded = dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    else:
        embedded = await find_or_start_postgres((ROOT / ".paygo").resolve(), "postgres")
        server = embedded.dsn
    database = f"paygo_load_{uuid.uuid4().hex[:8]}"
    dsn = dsn_for_database(server, database)
    await create_database(server, database)
    try:
        ids, tokens = await seed(dsn, args.permissions)
        base, gateway = await start_gateway(dsn)
        try:
            await measure(args, base, dsn, ids, tokens)
        finally:
            await _stop(gateway)
    finally:
        await drop_database(server, database)
        if embedded is not None:
            await embedded.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--seconds", type=float, default=20, help="length of each measured run (default 20)")
    parser.add_argument("--url", help="a running gateway (default: start one on embedded defaults)")
    parser.add_argument("--database-url", help="with --url: that gateway's database, where permissions are seeded")
    parser.add_argument("--permissions", type=int, default=1000, help="funded permissions to spread sessions over")
    parser.add_argument("--client-processes", type=int, default=1, help="load generator processes (default 1)")
    parser.add_argument("--contended-seconds", type=float, default=5,
                        help="also run this long with every task on one permission (0: skip)")
    return parser


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
