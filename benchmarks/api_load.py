"""Load benchmark: the API's hot path over real HTTP, against floors measured in the same run, directly and through
PgBouncer, with where the machine's CPU went.

    .venv/bin/python benchmarks/api_load.py                      # 2 workers (the cores), 20 s per run
    .venv/bin/python benchmarks/api_load.py --workers 1 --seconds 10 --no-pgbouncer
    .venv/bin/python benchmarks/api_load.py --url http://127.0.0.1:8080 --database-url postgresql://...

By default it makes a fresh database on the local PostgreSQL (or a private one under .paygo/), seeds a vendor and
`--permissions` funded permissions directly in SQL (each client task rotates over its own share of them, so
concurrent sessions do not queue on one permission row), starts `paygo serve --no-scheduler --workers W` on embedded
defaults on a free port, and measures, each for `--seconds` (with `--url`, that gateway only, directly):
- open+end: one operation opens a session (`POST /api/v1/sessions`) and ends it (`POST /api/v1/sessions/end`), at
  concurrency 64 and 8;
- the SQL floor at the same concurrency: the gateway's own statements for the same requests (`SELECT open_session(...)`,
  `SELECT end_session(...)`: one call per request) by raw asyncpg with no HTTP, on a pool of the gateway's total
  size; and, at the highest concurrency, the table floor for context: the least an open and an end could write
  (lock the permission and insert the session; lock it and update the session), none of the money engine;
- `GET` of a permission (its token holder's view) at the highest concurrency, and its SQL floor (the same one
  statement);
- all of it again with the gateway and the floor going through PgBouncer (transaction pooling, started here;
  skipped when pgbouncer is not installed or with `--no-pgbouncer`);
- a bare aiohttp app in a subprocess answering the same two routes with a constant, hit by the same client.
The HTTP client is wrk (Debian's package `wrk`, in C: about 0.05 of a core for this load) when it is installed,
else aiohttp in `--client-processes` processes of its own (0.2-0.3 of a core, taken from the gateway and
PostgreSQL on a small machine); `--load-generator` chooses. Each run also shows where the CPU went: PostgreSQL (the
backends serving the benchmark's database), PgBouncer, the gateway's processes, the load generator, and the rest
of the machine. It ends with the ratios and the issue's targets. Loopback only, bounded by the clock. Not a timed
test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.db import create_pool  # noqa: E402
from billing.permission_service import PERMISSION_STATE  # noqa: E402
from billing.schema import migrate  # noqa: E402
from billing.secrets import secret_hash  # noqa: E402
from chains.zcash_address import ZcashNetwork, encode_transparent  # noqa: E402
from paygo import event_loop  # noqa: E402
from paygo.embedded import (  # noqa: E402
    EmbeddedPgBouncer,
    EmbeddedServiceError,
    create_database,
    drop_database,
    dsn_for_database,
    find_or_start_postgres,
    start_pgbouncer,
)

POOL_SIZE = 20  # DATABASE_POOL_SIZE's default: each worker's pool
HISTORY_PER_PERMISSION = 100  # ended sessions seeded per permission
WALLET = encode_transparent(ZcashNetwork.REGTEST, "p2pkh", bytes(range(20)))
VENDOR_ID = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
START_TIMEOUT_SECONDS = 120
T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK = shutil.which("wrk")

SEED_VENDOR = "INSERT INTO vendors (id, name) VALUES ($1, 'load-benchmark')"
SEED_PERMISSIONS = """
INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash, approved_amount,
                         rate_per_hour, duration_days, status, balance, funded_amount, activated_at, expires_at)
SELECT id, 'zcash', 'ZEC', 8, $2, token_hash, 10000000000000, 250000000, 30, 'active', 10000000000000,
       10000000000000, now(), now() + interval '30 days'
  FROM unnest($1::uuid[], $3::bytea[]) AS seed (id, token_hash)
"""
# History: ended sessions spread over the permissions, so that the tables and their statistics look like a gateway's
# that has served a while (on empty tables the planner picks sequential scans that a real gateway never sees).
SEED_HISTORY = """
INSERT INTO sessions (id, code_hash, permission_id, vendor_id, rate_per_hour, status, started_at, ended_at,
                      charged_amount, settled_amount, settled_at)
SELECT gen_random_uuid(), sha256(g::text::bytea), ($1::uuid[])[1 + g % cardinality($1::uuid[])], $2, 250000000,
       'ended', now() - interval '2 days', now() - interval '1 day', 0, 0, now() - interval '1 day'
  FROM generate_series(1, $3) AS g
"""

# The SQL floor: the gateway's own statements (each request is one call), run by raw asyncpg with no HTTP: an open
# is `SELECT open_session(...)`, an end `SELECT end_session(...)` (migrations/0013), a token holder's `GET` of a
# permission billing.permission_service.PERMISSION_STATE.
FLOOR_OPEN_SESSION = "SELECT open_session($1, $2, $3, $4, $5)"
FLOOR_END_SESSION = "SELECT end_session($1)"

# For context, the table floor: the least an open and an end could write (a session row inserted, then updated), with
# the permission lock that makes each of them safe, and none of the money engine (ledger, stop instant, events).
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
import uvloop
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=lambda *_: print("ready", flush=True),
            loop=uvloop.new_event_loop())
"""


@dataclass
class Tally:
    """What one measured run did: operations, request latencies in seconds, errors by kind, the client's CPU."""

    seconds: float = 0.0
    operations: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0
    client_processes: int = 1
    quantiles_ms: dict[float, float] = field(default_factory=dict)  # wrk's, which keeps no latency list

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
        if fraction in self.quantiles_ms:
            return self.quantiles_ms[fraction]
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=1000)[round(fraction * 1000) - 1] * 1000

    def summary(self) -> str:
        errors = sum(self.errors.values())
        detail = f" {dict(sorted(self.errors.items()))}" if errors else ""
        return (f"{self.ops_per_second:8.1f}/s  p50 {self.percentile_ms(0.5):6.2f} ms  "
                f"p99 {self.percentile_ms(0.99):6.2f} ms  errors {errors}{detail}")


# ---------------------------------------------------------------------------------------------- HTTP load generator

Operation = Callable[[aiohttp.ClientSession, str, list[str], int, Tally], Awaitable[None]]


async def open_and_end(http: aiohttp.ClientSession, base: str, credentials: list[str], turn: int,
                       tally: Tally) -> None:
    """Open a session on this task's next permission and end it (one operation, two requests)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.post(f"{base}/api/v1/sessions", json={"user_wallet_address": WALLET, "vendor_id": str(VENDOR_ID)},
                         headers={"Authorization": f"Bearer {credentials[turn % len(credentials)]}"}) as response:
        body = await response.json()
        if response.status != 201:
            tally.error(f"open {response.status} {body.get('error', {}).get('code')}")
            return
    opened = loop.time()
    tally.latencies.append(opened - started)
    async with http.post(f"{base}/api/v1/sessions/end", json={"session_code": body["session_code"]}) as response:
        ended = await response.json()
        if response.status != 200:
            tally.error(f"end {response.status} {ended.get('error', {}).get('code')}")
            return
    tally.latencies.append(loop.time() - opened)
    tally.operations += 1


async def show_permission(http: aiohttp.ClientSession, base: str, credentials: list[str], turn: int,
                          tally: Tally) -> None:
    """`GET` one of this task's permissions with its token (credentials are "id token")."""
    permission_id, token = credentials[turn % len(credentials)].split()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{base}/api/v1/zcash/permissions/{permission_id}",
                        headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        if response.status != 200:
            tally.error(f"show {response.status}")
            return
    tally.latencies.append(loop.time() - started)
    tally.operations += 1


OPERATIONS: dict[str, Operation] = {"open+end": open_and_end, "GET permission": show_permission}


async def _http_task(operation: Operation, http: aiohttp.ClientSession, base: str, credentials: list[str],
                     deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    turn = 0
    while loop.time() < deadline:
        turn += 1
        try:
            await operation(http, base, credentials, turn, tally)
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.error(type(exc).__name__)


async def _http_load(operation: str, base: str, task_credentials: list[list[str]], seconds: float) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=len(task_credentials))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        loop = asyncio.get_running_loop()
        cpu_started, wall_started = time.process_time(), loop.time()
        deadline = wall_started + seconds
        await asyncio.gather(*(_http_task(OPERATIONS[operation], http, base, credentials, deadline, tally)
                               for credentials in task_credentials))
        tally.seconds = loop.time() - wall_started
        tally.client_cpu_seconds = time.process_time() - cpu_started
    return tally


def _http_load_process(operation: str, base: str, task_credentials: list[list[str]], seconds: float,
                       results: multiprocessing.Queue) -> None:
    results.put(event_loop.run(_http_load(operation, base, task_credentials, seconds)))


def run_http_load(operation: str, base: str, task_credentials: list[list[str]], seconds: float,
                  processes: int) -> Tally:
    """The HTTP load, from `processes` separate processes sharing the tasks, so the client does not compete with
    the gateway for one event loop (it still competes for the machine's cores)."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_http_load_process,
                               args=(operation, base, task_credentials[index::processes], seconds, results))
               for index in range(processes)]
    for worker in workers:
        worker.start()
    tally = Tally(client_processes=processes)
    for _ in workers:
        tally.merge(results.get(timeout=seconds + 120))
    for worker in workers:
        worker.join()
    return tally


# wrk (C, one thread): the same operations as the aiohttp client above for a small share of the machine's CPU. Each
# connection takes the next credential in turn; an open's session code is queued and the thread's next request ends
# it. Latencies are per request, as above; `done` prints the counts as one JSON line.
WRK_SCRIPT = """
credentials = {credentials}
operation = "{operation}"
turn, ops, errors, codes, threads = 0, 0, 0, {{}}, {{}}
function setup(thread) table.insert(threads, thread) end
function request()
  if operation == "open+end" then
    local code = table.remove(codes)
    if code then
      return wrk.format("POST", "/api/v1/sessions/end", {{["Content-Type"] = "application/json"}},
                        '{{"session_code": "' .. code .. '"}}')
    end
  end
  turn = turn % #credentials + 1
  local credential = credentials[turn]
  if operation == "GET permission" then
    return wrk.format("GET", "/api/v1/zcash/permissions/" .. credential[1],
                      {{["Authorization"] = "Bearer " .. credential[2]}})
  end
  return wrk.format("POST", "/api/v1/sessions", {{["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer " .. credential[1]}}, '{open_body}')
end
function response(status, headers, body)
  if status == 201 then
    table.insert(codes, string.match(body, '"session_code"%s*:%s*"([^"]+)"'))
  elseif status == 200 then
    ops = ops + 1
  else
    errors = errors + 1
  end
end
function done(summary, latency, requests)
  local done_ops, done_errors = 0, 0
  for _, thread in ipairs(threads) do
    done_ops = done_ops + thread:get("ops")
    done_errors = done_errors + thread:get("errors")
  end
  local socket = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRK {{"ops": %d, "errors": %d, "socket_errors": %d, "seconds": %.6f, "p50_us": %d, ' ..
                         '"p99_us": %d}}\\n', done_ops, done_errors, socket, summary.duration / 1e6,
                         latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk_load(operation: str, base: str, task_credentials: list[list[str]], seconds: float) -> Tally:
    """The HTTP load from wrk, one connection per task, its CPU read from the children's usage."""
    credentials = [credential.split() for share in task_credentials for credential in share]
    table = "{" + ", ".join("{" + ", ".join(f'"{part}"' for part in parts) + "}" for parts in credentials) + "}"
    open_body = json.dumps({"user_wallet_address": WALLET, "vendor_id": str(VENDOR_ID)})
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.format(credentials=table, operation=operation, open_body=open_body))
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([WRK or "wrk", "-t1", f"-c{len(task_credentials)}", f"-d{seconds:g}s", "--timeout", "30s",
                               "-s", script.name, base], capture_output=True, text=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("WRK ")]
    counts = json.loads(line.removeprefix("WRK "))
    tally = Tally(seconds=counts["seconds"], operations=counts["ops"],
                  client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                  quantiles_ms={0.5: counts["p50_us"] / 1000, 0.99: counts["p99_us"] / 1000})
    for kind in ("errors", "socket_errors"):
        if counts[kind]:
            tally.errors[kind] = counts[kind]
    return tally


def http_load(args: argparse.Namespace, operation: str, base: str, task_credentials: list[list[str]],
              seconds: float | None = None) -> Tally:
    """The HTTP load from the chosen generator, for `seconds` (default `--seconds`)."""
    if args.load_generator == "wrk":
        return run_wrk_load(operation, base, task_credentials, seconds or args.seconds)
    return run_http_load(operation, base, task_credentials, seconds or args.seconds, args.client_processes)


# ------------------------------------------------------------------------------------------------------- SQL floor

@dataclass(frozen=True)
class FloorPermission:
    """What the floor needs of a seeded permission: its id and its token's hash (as the gateway stores it)."""

    id: uuid.UUID
    token_hash: bytes


FloorOperation = Callable[[asyncpg.Pool, FloorPermission, Tally], Awaitable[None]]


async def statements_open_and_end(pool: asyncpg.Pool, permission: FloorPermission, tally: Tally) -> None:
    """The gateway's own two calls: open a session on the permission, then end it."""
    loop = asyncio.get_running_loop()
    code_hash = secrets.token_bytes(32)
    started = loop.time()
    async with pool.acquire() as conn:
        opened = await conn.fetchval(FLOOR_OPEN_SESSION, permission.token_hash, WALLET, VENDOR_ID, uuid.uuid4(),
                                     code_hash)
    if opened["outcome"] != "opened":
        tally.error(f"open {opened['outcome']}")
        return
    ending = loop.time()
    tally.latencies.append(ending - started)
    async with pool.acquire() as conn:
        ended = await conn.fetchval(FLOOR_END_SESSION, code_hash)
    if ended["outcome"] != "ended":
        tally.error(f"end {ended['outcome']}")
        return
    tally.latencies.append(loop.time() - ending)
    tally.operations += 1


async def statement_show_permission(pool: asyncpg.Pool, permission: FloorPermission, tally: Tally) -> None:
    """The gateway's one statement for a token holder's `GET` of a permission."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(PERMISSION_STATE, permission.id, permission.token_hash)
    if row["holder"] != permission.id:
        tally.error("show holder")
        return
    tally.latencies.append(loop.time() - started)
    tally.operations += 1


async def table_open_and_end(pool: asyncpg.Pool, permission: FloorPermission, tally: Tally) -> None:
    """The table floor: lock and insert, then lock and update, each its own transaction."""
    loop = asyncio.get_running_loop()
    session_id = uuid.uuid4()
    started = loop.time()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(FLOOR_LOCK, permission.id)
        await conn.execute(FLOOR_OPEN, session_id, secrets.token_bytes(32), permission.id, VENDOR_ID)
    opened = loop.time()
    tally.latencies.append(opened - started)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(FLOOR_LOCK, permission.id)
        await conn.execute(FLOOR_END, session_id)
    tally.latencies.append(loop.time() - opened)
    tally.operations += 1


FLOOR_OPERATIONS: dict[str, FloorOperation] = {
    "open+end": statements_open_and_end, "GET permission": statement_show_permission,
    "table open+end": table_open_and_end,
}


async def _floor_task(operation: FloorOperation, pool: asyncpg.Pool, permissions: list[FloorPermission],
                      deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    turn = 0
    while loop.time() < deadline:
        permission = permissions[turn % len(permissions)]
        turn += 1
        try:
            await operation(pool, permission, tally)
        except asyncpg.PostgresError as exc:
            tally.error(type(exc).__name__)


async def run_sql_floor(operation: str, pool: asyncpg.Pool, task_permissions: list[list[FloorPermission]],
                        seconds: float) -> Tally:
    tally = Tally()
    loop = asyncio.get_running_loop()
    cpu_started, wall_started = time.process_time(), loop.time()
    deadline = wall_started + seconds
    await asyncio.gather(*(_floor_task(FLOOR_OPERATIONS[operation], pool, permissions, deadline, tally)
                           for permissions in task_permissions))
    tally.seconds = loop.time() - wall_started
    tally.client_cpu_seconds = time.process_time() - cpu_started
    return tally


# ------------------------------------------------------------------------------------------------------ CPU split

def _process_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _tree(pid: int) -> set[int]:
    """`pid` and its descendants."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(parent, set()).add(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, ()))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSplit:
    """Where the machine's CPU went during one run, in cores (1.0 = one core busy for the whole run)."""

    database: str
    monitor: asyncpg.Connection
    gateway_pid: int | None
    bouncer_pid: int | None = None
    _start: dict[str, dict[int, int]] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)

    async def _roles(self) -> dict[str, set[int]]:
        backends = {row["pid"] for row in await self.monitor.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)}
        return {"PostgreSQL": backends,
                "gateway": _tree(self.gateway_pid) if self.gateway_pid else set(),
                "PgBouncer": {self.bouncer_pid} if self.bouncer_pid else set()}

    async def start(self) -> None:
        self._start = {role: {pid: _process_ticks(pid) for pid in pids} for role, pids in (await self._roles()).items()}
        self._machine = _machine_ticks()

    async def stop(self, client: Tally) -> str:
        busy_end, total_end = _machine_ticks()
        seconds = (total_end - self._machine[1]) / CLOCK_TICKS / (os.cpu_count() or 1)
        cores: dict[str, float] = {}
        for role, pids in (await self._roles()).items():
            began = self._start.get(role, {})
            ticks = sum(_process_ticks(pid) - began.get(pid, 0) for pid in pids | began.keys())
            cores[role] = ticks / CLOCK_TICKS / seconds
        cores["load generator"] = client.client_cpu_seconds / seconds
        busy = (busy_end - self._machine[0]) / CLOCK_TICKS / seconds
        cores["rest of the machine"] = max(0.0, busy - sum(cores.values()))
        cores["idle"] = (os.cpu_count() or 1) - busy
        return "  ".join(f"{role} {value:.2f}" for role, value in cores.items() if value >= 0.005)


# ---------------------------------------------------------------------------------------------- servers under test

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _start(command: list[str], ready_text: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Starts a server subprocess and waits for `ready_text` on its standard output."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,  # noqa: ASYNC220 - start-up
                               stderr=subprocess.DEVNULL)
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
        await asyncio.to_thread(process.wait, 60)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait)


async def start_gateway(workers: int, **database: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`paygo serve --no-scheduler --workers N` on embedded defaults but for the database settings given."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "ZCASH_RPC_URL"} and not key.startswith("DATABASE_")}
    # the clients open and end sessions as fast as they can: lift the rate limits, which would otherwise be measured
    env.update(LOG_LEVEL="WARNING", RATE_LIMIT_CREATE="10000000/minute", RATE_LIMIT_ANONYMOUS="10000000/minute",
               **database)
    process = await _start([sys.executable, "-m", "paygo.cli", "serve", "--no-scheduler", "--workers", str(workers),
                            "--listen", f"127.0.0.1:{port}"], "PayGo gateway listening", env)
    return f"http://127.0.0.1:{port}", process


async def start_bare_app() -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    process = await _start([sys.executable, "-c", BARE_APP.replace("{port}", str(port))], "ready", dict(os.environ))
    return f"http://127.0.0.1:{port}", process


# ------------------------------------------------------------------------------------------------------------ run

async def seed(dsn: str, count: int) -> tuple[list[uuid.UUID], list[str]]:
    """A vendor and `count` active, funded permissions with a history of ended sessions; returns their ids and
    bearer tokens."""
    ids = [uuid.uuid4() for _ in range(count)]
    tokens = [f"pgp_load_{secrets.token_urlsafe(24)}" for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(SEED_VENDOR, VENDOR_ID)
        await conn.execute(SEED_PERMISSIONS, ids, WALLET, [secret_hash(token) for token in tokens])
        await conn.execute(SEED_HISTORY, ids, VENDOR_ID, count * HISTORY_PER_PERMISSION)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return ids, tokens


def shares(items: Sequence[T], tasks: int) -> list[list[T]]:
    """Task i gets items i, i + tasks, ...: disjoint when there are at least as many items as tasks."""
    return [list(items[index::tasks]) or [items[index % len(items)]] for index in range(tasks)]


@dataclass
class Variant:
    """One way the gateway and the floor reach PostgreSQL: directly, or through PgBouncer."""

    name: str
    base: str
    gateway_pid: int | None
    floor_dsn: str
    statement_cache_size: int
    bouncer_pid: int | None = None


async def measure(args: argparse.Namespace, variant: Variant, database: str, monitor: asyncpg.Connection,
                  ids: list[uuid.UUID], tokens: list[str]) -> dict[str, Tally]:
    """At each concurrency the gateway's open+end and its SQL floor (the table floor too at the highest), then
    `GET` of a permission and its floor; each run with its CPU split."""
    found: dict[str, Tally] = {}
    split = CpuSplit(database, monitor, variant.gateway_pid, variant.bouncer_pid)
    floor_permissions = [FloorPermission(i, secret_hash(t)) for i, t in zip(ids, tokens, strict=True)]

    async def floor_run(operation: str, concurrency: int) -> Tally:
        size = min(POOL_SIZE * args.workers, concurrency)
        pool = await create_pool(variant.floor_dsn, min_size=size, max_size=size,
                                 statement_cache_size=variant.statement_cache_size)
        try:
            tasks = shares(floor_permissions, concurrency)
            if args.warmup:
                await run_sql_floor(operation, pool, tasks, args.warmup)
            await split.start()
            floor = await run_sql_floor(operation, pool, tasks, args.seconds)
            cpu = await split.stop(floor)  # before the pool closes: its backends are counted
        finally:
            await pool.close()
        label = f"{operation} c={concurrency}"
        print(f"{variant.name:<10} {label:<22} SQL floor  {floor.summary()}", flush=True)
        print(f"{'':<10}   CPU (cores): {cpu}   (load generator: the floor's own asyncpg client)", flush=True)
        return floor

    async def gateway_run(operation: str, concurrency: int, credentials: list[str]) -> Tally:
        tasks = shares(credentials, concurrency)
        if args.warmup:
            http_load(args, operation, variant.base, tasks, args.warmup)
        await split.start()
        gateway = http_load(args, operation, variant.base, tasks)
        cpu = await split.stop(gateway)
        label = f"{operation} c={concurrency}"
        print(f"{variant.name:<10} {label:<22} gateway    {gateway.summary()}", flush=True)
        print(f"{'':<10}   CPU (cores): {cpu}", flush=True)
        return gateway

    high = max(args.concurrency)
    for concurrency in args.concurrency:
        found[f"gateway c={concurrency}"] = await gateway_run("open+end", concurrency, tokens)
        found[f"floor c={concurrency}"] = await floor_run("open+end", concurrency)
    found["table floor"] = await floor_run("table open+end", high)
    found["GET permission"] = await gateway_run("GET permission", high,
                                                [f"{i} {t}" for i, t in zip(ids, tokens, strict=True)])
    found["GET floor"] = await floor_run("GET permission", high)
    return found


def report(results: dict[str, dict[str, Tally]], bare: dict[int, Tally], concurrencies: list[int]) -> None:
    high, low = max(concurrencies), min(concurrencies)
    print("\nratios (gateway over the same-run floor of the same statements; the table floor and a bare aiohttp "
          "handler for context):")
    for name, found in results.items():
        for concurrency in concurrencies:
            gateway, floor = found[f"gateway c={concurrency}"], found[f"floor c={concurrency}"]
            print(f"  {name:<10} open+end c={concurrency:<3} gateway / SQL floor "
                  f"{gateway.ops_per_second / floor.ops_per_second:.2f}   gateway / bare aiohttp "
                  f"{gateway.ops_per_second / bare[concurrency].ops_per_second:.2f}")
        print(f"  {name:<10} open+end c={high:<3} gateway / table floor "
              f"{found[f'gateway c={high}'].ops_per_second / found['table floor'].ops_per_second:.2f}")
        print(f"  {name:<10} GET      c={high:<3} gateway / SQL floor "
              f"{found['GET permission'].ops_per_second / found['GET floor'].ops_per_second:.2f}")
    print("targets (issue 12):")
    for name, found in results.items():
        gateway, floor = found[f"gateway c={high}"], found[f"floor c={high}"]
        print(f"  {name:<10} open+end c={high}: {gateway.ops_per_second:.0f}/s (>= 1000; its SQL floor alone "
              f"{floor.ops_per_second:.0f}/s), {gateway.ops_per_second / floor.ops_per_second:.2f} of the floor "
              f"(>= 0.6); p99 at c={low}: {found[f'gateway c={low}'].percentile_ms(0.99):.1f} ms (<= 25); "
              f"GET permission {found['GET permission'].ops_per_second:.0f}/s (>= 3000; its SQL floor alone "
              f"{found['GET floor'].ops_per_second:.0f}/s)")


async def main(args: argparse.Namespace) -> None:
    print(f"PayGo API load: {os.cpu_count()} cores; gateway with {args.workers} worker process(es), pool "
          f"{POOL_SIZE} each; {args.permissions} permissions; {args.seconds:g} s per run; "
          f"load generator {args.load_generator}"
          + (f" in {args.client_processes} process(es)" if args.load_generator == "aiohttp" else ""), flush=True)
    if args.url:
        if not args.database_url:
            raise SystemExit("--url needs --database-url: the permissions are seeded directly in that database")
        ids, tokens = await seed(args.database_url, args.permissions)
        monitor = await asyncpg.connect(args.database_url)
        try:
            variant = Variant("running", args.url.rstrip("/"), None, args.database_url, 100)
            database = await monitor.fetchval("SELECT current_database()")
            results: dict[str, dict[str, Tally]] = {"running": await measure(args, variant, database, monitor, ids,
                                                                             tokens)}
        finally:
            await monitor.close()
        report(results, await measure_bare(args), args.concurrency)
        return
    if os.environ.get("DATABASE_URL"):
        server, embedded = dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    else:
        embedded = await find_or_start_postgres((ROOT / ".paygo").resolve(), "postgres")
        server = embedded.dsn
    database = f"paygo_load_{uuid.uuid4().hex[:8]}"
    dsn = dsn_for_database(server, database)
    await create_database(server, database)
    bouncer: EmbeddedPgBouncer | None = None
    try:
        ids, tokens = await seed(dsn, args.permissions)
        monitor = await asyncpg.connect(dsn)
        try:
            results = {}
            base, gateway = await start_gateway(args.workers, DATABASE_URL=dsn,
                                                DATABASE_POOL_SIZE=str(POOL_SIZE))
            try:
                results["direct"] = await measure(args, Variant("direct", base, gateway.pid, dsn, 100),
                                                  database, monitor, ids, tokens)
            finally:
                await _stop(gateway)
            if args.pgbouncer:
                try:
                    bouncer = await start_pgbouncer((ROOT / ".paygo").resolve(), server,
                                                    pool_size=POOL_SIZE * args.workers)
                except EmbeddedServiceError as exc:
                    print(f"PgBouncer variant skipped: {exc}", flush=True)
                if bouncer is not None:
                    pooled = bouncer.dsn(dsn)
                    base, gateway = await start_gateway(
                        args.workers, DATABASE_URL=pooled, DATABASE_DIRECT_URL=dsn,
                        DATABASE_STATEMENT_CACHE_SIZE="0", DATABASE_POOL_SIZE=str(POOL_SIZE))
                    try:
                        assert bouncer.process is not None
                        variant = Variant("PgBouncer", base, gateway.pid, pooled, 0, bouncer.process.pid)
                        results["PgBouncer"] = await measure(args, variant, database, monitor, ids, tokens)
                    finally:
                        await _stop(gateway)
        finally:
            await monitor.close()
        report(results, await measure_bare(args), args.concurrency)
    finally:
        if bouncer is not None:
            await bouncer.stop()
        await drop_database(server, database)
        if embedded is not None:
            await embedded.stop()


async def measure_bare(args: argparse.Namespace) -> dict[int, Tally]:
    bare_base, bare_process = await start_bare_app()
    found = {}
    try:
        for concurrency in args.concurrency:
            found[concurrency] = http_load(args, "open+end", bare_base, [["-"]] * concurrency)
            print(f"bare aiohttp open+end c={concurrency:<3}          {found[concurrency].summary()}", flush=True)
    finally:
        await _stop(bare_process)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="gateway worker processes (default: the number of cores)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 8],
                        help="requests in flight, one run each (default 64 8)")
    parser.add_argument("--seconds", type=float, default=20, help="length of each measured run (default 20)")
    parser.add_argument("--warmup", type=float, default=5,
                        help="seconds of the same load before each measured run, not counted (default 5): every "
                             "pooled connection's first calls compile the PL/pgSQL functions and plan their "
                             "statements, which a serving gateway has long done")
    parser.add_argument("--no-pgbouncer", dest="pgbouncer", action="store_false",
                        help="skip the runs through PgBouncer")
    parser.add_argument("--url", help="a running gateway (default: start one on embedded defaults)")
    parser.add_argument("--database-url", help="with --url: that gateway's database, where permissions are seeded")
    parser.add_argument("--permissions", type=int, default=1000, help="funded permissions to spread sessions over")
    parser.add_argument("--client-processes", type=int, default=1,
                        help="aiohttp load generator processes (default 1)")
    parser.add_argument("--load-generator", choices=("wrk", "aiohttp"), default="wrk" if WRK else "aiohttp",
                        help="the HTTP client: wrk (C; Debian's package, the default when installed) or aiohttp "
                             "(Python, in --client-processes processes)")
    return parser


if __name__ == "__main__":
    event_loop.run(main(_parser().parse_args()))
