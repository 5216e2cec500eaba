"""Local PostgreSQL and Redis for `paygo serve` (when DATABASE_URL / REDIS_URL are unset) and for the tests; and, for
the tests and benchmarks of scale-out, a PgBouncer in front of a server and a streaming replica of a private one.

`find_or_start_postgres` and `find_or_start_redis` first use the machine's own server on its standard port. Only when
none answers do they start a private server on a free port of 127.0.0.1, with its files under `state_dir`; `stop()`
stops it again, and a server started here never outlives its parent: the kernel signals it when the thread that
started it exits (Linux parent-death signal), so even a killed test run leaves nothing behind.

PostgreSQL refuses to run as root, so as root the private server and its `initdb` run as the `postgres` user and its
directory is handed to that user; `state_dir` and its parents must then be searchable by `postgres`.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import asyncpg
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# The machine's own servers: PostgreSQL over TCP, then over Debian's default unix socket (user postgres, trust auth).
LOCAL_POSTGRES_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://postgres@/postgres?host=/var/run/postgresql",
)
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

_PROBE_TIMEOUT = 2.0  # seconds an existing server gets to answer
_START_TIMEOUT = 30.0  # seconds a private server gets to accept connections
_STOP_TIMEOUT = 30.0  # seconds a private server gets to exit before it is killed
_POSTGRES_USER = "postgres"

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child must not load libraries


class EmbeddedServiceError(RuntimeError):
    """A private server could not be started."""


@dataclass(kw_only=True)
class _LocalServer:
    process: subprocess.Popen[bytes] | None = None  # the private server started here; None for the machine's own
    _stop_signal: ClassVar[signal.Signals]

    @property
    def started_here(self) -> bool:
        return self.process is not None

    async def stop(self) -> None:
        """Stops the server if it was started here and waits until it has exited; leaves the machine's own alone."""
        if self.process is not None:
            await _stop_process(self.process, self._stop_signal)


@dataclass(kw_only=True)
class EmbeddedPostgres(_LocalServer):
    dsn: str
    _stop_signal = signal.SIGINT  # "fast shutdown": ends open sessions instead of waiting for them


@dataclass(kw_only=True)
class EmbeddedPgBouncer(_LocalServer):
    port: int
    _stop_signal = signal.SIGINT  # "safe shutdown": waits for the transactions in flight

    def dsn(self, server_dsn: str) -> str:
        """`server_dsn` (a database of the server behind it) through this PgBouncer."""
        return urlsplit(server_dsn)._replace(netloc=f"{urlsplit(server_dsn).username}@127.0.0.1:{self.port}").geturl()


@dataclass(kw_only=True)
class EmbeddedRedis(_LocalServer):
    url: str
    _stop_signal = signal.SIGTERM


async def find_or_start_postgres(state_dir: Path, database: str) -> EmbeddedPostgres:
    """Returns a server with `database` in it (created if missing): the machine's own, else a private one."""
    for server_dsn in LOCAL_POSTGRES_DSNS:
        if await _postgres_answers(server_dsn):
            await create_database(server_dsn, database, exist_ok=True)
            return EmbeddedPostgres(dsn=dsn_for_database(server_dsn, database))
    return await start_private_postgres(state_dir, database)


async def start_private_postgres(state_dir: Path, database: str, port: int | None = None) -> EmbeddedPostgres:
    """Starts a PostgreSQL server of our own on `port` (default: a free one), its cluster under `state_dir/pg`
    (made on first use)."""
    bin_dir = postgres_bin_dir()
    pg_dir = state_dir.resolve() / "pg"  # noqa: ASYNC240 - start-up, before serving
    data_dir = pg_dir / "data"
    socket_dir = pg_dir / "run"
    socket_dir.mkdir(parents=True, exist_ok=True)
    as_postgres_user = _postgres_user_options()
    if as_postgres_user:
        for directory in (pg_dir, socket_dir):
            shutil.chown(directory, _POSTGRES_USER, _POSTGRES_USER)
    if not (data_dir / "PG_VERSION").exists():
        await _initdb(bin_dir, data_dir, as_postgres_user)

    port = port or _free_port()
    log_path = pg_dir / "postgres.log"
    command = [
        str(bin_dir / "postgres"),
        *("-D", str(data_dir), "-k", str(socket_dir), "-p", str(port)),
        *("-c", "listen_addresses=127.0.0.1"),
    ]
    process = _spawn(command, log_path, pg_dir, EmbeddedPostgres._stop_signal, as_postgres_user)
    server_dsn = f"postgresql://{_POSTGRES_USER}@127.0.0.1:{port}/postgres"
    server = EmbeddedPostgres(dsn=dsn_for_database(server_dsn, database), process=process)
    try:
        await _wait_until_ready(functools.partial(_postgres_answers, server_dsn), process, log_path, "PostgreSQL")
        await create_database(server_dsn, database, exist_ok=True)
    except BaseException:
        await server.stop()
        raise
    return server


async def start_private_replica(state_dir: Path, primary_dsn: str) -> EmbeddedPostgres:
    """Starts a streaming replica of the private server at `primary_dsn` (trust authentication for replication from
    127.0.0.1, as `initdb --auth trust` sets up): a base backup (`pg_basebackup -R`, which also writes the standby's
    connection to its primary) under `state_dir/replica`, started on a free port. Its DSN names the same database."""
    bin_dir = postgres_bin_dir()
    replica_dir = state_dir.resolve() / "replica"  # noqa: ASYNC240 - start-up, before serving
    data_dir = replica_dir / "data"
    socket_dir = replica_dir / "run"
    socket_dir.mkdir(parents=True, exist_ok=True)
    as_postgres_user = _postgres_user_options()
    if as_postgres_user:
        for directory in (replica_dir, socket_dir):
            shutil.chown(directory, _POSTGRES_USER, _POSTGRES_USER)
    primary = urlsplit(primary_dsn)
    if not (data_dir / "PG_VERSION").exists():
        command = [str(bin_dir / "pg_basebackup"), "-R", "-X", "stream", "--checkpoint=fast", "-D", str(data_dir),
                   "-h", primary.hostname or "127.0.0.1", "-p", str(primary.port or 5432), "-U", _POSTGRES_USER]
        result = await asyncio.to_thread(functools.partial(
            subprocess.run, command, cwd=replica_dir, capture_output=True, text=True, check=False,
            **as_postgres_user))
        if result.returncode != 0:
            raise EmbeddedServiceError(f"pg_basebackup failed with status {result.returncode}:\n{result.stderr}")
    port = _free_port()
    log_path = replica_dir / "postgres.log"
    command = [
        str(bin_dir / "postgres"),
        *("-D", str(data_dir), "-k", str(socket_dir), "-p", str(port)),
        *("-c", "listen_addresses=127.0.0.1", "-c", "hot_standby=on"),
    ]
    process = _spawn(command, log_path, replica_dir, EmbeddedPostgres._stop_signal, as_postgres_user)
    dsn = primary._replace(netloc=f"{primary.username or _POSTGRES_USER}@127.0.0.1:{port}").geturl()
    replica = EmbeddedPostgres(dsn=dsn, process=process)
    try:
        await _wait_until_ready(functools.partial(_postgres_answers, dsn), process, log_path, "the replica")
    except BaseException:
        await replica.stop()
        raise
    return replica


async def start_pgbouncer(state_dir: Path, server_dsn: str, *, pool_mode: str = "transaction",
                          pool_size: int = 20) -> EmbeddedPgBouncer:
    """Starts Debian's PgBouncer on a free port of 127.0.0.1 in front of the server of `server_dsn`, passing every
    database name through (the server must trust its user from 127.0.0.1). Its admin console is the database
    `pgbouncer` (`SHOW STATS`, simple queries only)."""
    pgbouncer = shutil.which("pgbouncer", path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin")))
    if pgbouncer is None:
        raise EmbeddedServiceError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    server = urlsplit(server_dsn)
    user = server.username or _POSTGRES_USER
    bouncer_dir = state_dir.resolve() / f"pgbouncer-{secrets.token_hex(4)}"  # noqa: ASYNC240 - start-up
    bouncer_dir.mkdir(parents=True)
    port = _free_port()
    (bouncer_dir / "users.txt").write_text(f'"{user}" ""\n')
    (bouncer_dir / "pgbouncer.ini").write_text(f"""[databases]
* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {bouncer_dir / 'users.txt'}
admin_users = {user}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
""")
    as_postgres_user = _postgres_user_options()
    if as_postgres_user:  # PgBouncer refuses to run as root
        for path in (bouncer_dir, *bouncer_dir.iterdir()):
            shutil.chown(path, _POSTGRES_USER, _POSTGRES_USER)
    log_path = bouncer_dir / "pgbouncer.log"
    process = _spawn([pgbouncer, str(bouncer_dir / "pgbouncer.ini")], log_path, bouncer_dir,
                     EmbeddedPgBouncer._stop_signal, as_postgres_user)
    bouncer = EmbeddedPgBouncer(port=port, process=process)
    try:
        await _wait_until_ready(functools.partial(_postgres_answers, bouncer.dsn(server_dsn)), process, log_path,
                                "PgBouncer")
    except BaseException:
        await bouncer.stop()
        raise
    return bouncer


async def find_or_start_redis(state_dir: Path) -> EmbeddedRedis | None:
    """Returns the machine's Redis, else a private one, else None when `redis-server` is not installed."""
    if await _redis_answers(LOCAL_REDIS_URL):
        return EmbeddedRedis(url=LOCAL_REDIS_URL)
    if shutil.which("redis-server") is None:
        return None
    return await start_private_redis(state_dir)


async def start_private_redis(state_dir: Path) -> EmbeddedRedis:
    """Starts a Redis server of our own on a free port that keeps nothing on disk."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise EmbeddedServiceError("redis-server is not installed (Debian: apt-get install redis-server)")
    redis_dir = state_dir.resolve() / "redis"  # noqa: ASYNC240 - start-up, before serving
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log_path = redis_dir / "redis.log"
    command = [
        redis_server,
        *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(redis_dir)),
        *("--save", "", "--appendonly", "no"),
    ]
    process = _spawn(command, log_path, redis_dir, EmbeddedRedis._stop_signal, {})
    url = f"redis://127.0.0.1:{port}/0"
    server = EmbeddedRedis(url=url, process=process)
    try:
        await _wait_until_ready(functools.partial(_redis_answers, url), process, log_path, "Redis")
    except BaseException:
        await server.stop()
        raise
    return server


def dsn_for_database(dsn: str, database: str) -> str:
    """The same server and user as `dsn`, connected to `database`."""
    return urlsplit(dsn)._replace(path="/" + quote(database, safe="")).geturl()


async def create_database(server_dsn: str, name: str, *, template: str | None = None, exist_ok: bool = False) -> None:
    """Creates database `name` on the server of `server_dsn`, as a copy of `template` when one is given."""
    statement = f"CREATE DATABASE {_quote_identifier(name)}"
    if template is not None:
        statement += f" TEMPLATE {_quote_identifier(template)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(statement)
    except asyncpg.DuplicateDatabaseError:
        if not exist_ok:
            raise
    finally:
        await conn.close()


async def drop_database(server_dsn: str, name: str) -> None:
    """Drops database `name` if it exists, ending the sessions still connected to it."""
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
    finally:
        await conn.close()


def postgres_bin_dir() -> Path:
    """Where `initdb` and `postgres` are: Debian's newest /usr/lib/postgresql/<version>/bin, `pg_config --bindir`,
    or the PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_of_bin_dir, reverse=True)
    if pg_config := shutil.which("pg_config"):
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if bindir:
            candidates.append(Path(bindir))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise EmbeddedServiceError(
        "no PostgreSQL server binaries (initdb, postgres) found: install Debian's postgresql package, "
        "or point DATABASE_URL (TEST_DATABASE_URL for the tests) at a running server"
    )


def _version_of_bin_dir(bin_dir: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, so that 16 sorts after 9.6."""
    parts = bin_dir.parent.name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else (-1,)


def _postgres_user_options() -> dict[str, Any]:
    """Popen options that run a command as the `postgres` user when we are root (PostgreSQL refuses root);
    none otherwise. Unlike `runuser`, this leaves no process in between, so signals reach the server itself."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(_POSTGRES_USER)
    except KeyError:
        raise EmbeddedServiceError(
            f"running as root, and PostgreSQL must run as the {_POSTGRES_USER!r} user, which does not exist"
        ) from None
    return {"user": _POSTGRES_USER, "group": _POSTGRES_USER, "extra_groups": []}


async def _initdb(bin_dir: Path, data_dir: Path, run_options: dict[str, Any]) -> None:
    """Creates the cluster in a staging directory and renames it into place, so a cut-short run leaves no half
    cluster behind."""
    staging_dir = data_dir.with_name(data_dir.name + ".initdb")
    shutil.rmtree(staging_dir, ignore_errors=True)
    command = [
        str(bin_dir / "initdb"),
        *("-D", str(staging_dir), "--username", _POSTGRES_USER, "--auth", "trust"),
        *("--encoding", "UTF8", "--locale", "C"),
    ]
    result = await asyncio.to_thread(
        functools.partial(subprocess.run, command, cwd=data_dir.parent, capture_output=True, text=True, check=False,
                          **run_options)
    )
    if result.returncode != 0:
        hint = f" (it runs as {_POSTGRES_USER!r}, who must be able to reach {data_dir.parent})" if run_options else ""
        raise EmbeddedServiceError(
            f"initdb failed with status {result.returncode}{hint}:\n{result.stdout}{result.stderr}"
        )
    staging_dir.rename(data_dir)


def exit_with_parent(death_signal: signal.Signals) -> None:
    """Have the kernel send this process `death_signal` when the thread that started it exits (Linux)."""
    _libc.prctl(_PR_SET_PDEATHSIG, death_signal)


def _spawn(
    command: list[str], log_path: Path, cwd: Path, death_signal: signal.Signals, run_options: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """Starts a server in its own session (a terminal's Ctrl-C goes to us, and we stop it) with its output in
    `log_path`; the kernel sends it `death_signal` when the thread that started it exits."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=functools.partial(_libc.prctl, _PR_SET_PDEATHSIG, death_signal),
            **run_options,
        )


async def _wait_until_ready(
    answers: Callable[[], Awaitable[bool]], process: subprocess.Popen[bytes], log_path: Path, name: str
) -> None:
    """Polls until the server answers; fails early, with the end of its log, when it exits instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while not await answers():
        if process.poll() is not None:
            log_tail = log_path.read_text(errors="replace")[-2000:]  # noqa: ASYNC240 - start-up, before serving
            raise EmbeddedServiceError(f"{name} exited with status {process.returncode}; {log_path}:\n{log_tail}")
        if loop.time() > deadline:
            raise EmbeddedServiceError(
                f"{name} did not accept connections within {_START_TIMEOUT:.0f} s; see {log_path}"
            )
        await asyncio.sleep(0.05)


async def _stop_process(process: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(stop_signal)
    try:
        await asyncio.to_thread(process.wait, _STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait)


async def _postgres_answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=_PROBE_TIMEOUT)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


async def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=_PROBE_TIMEOUT, socket_timeout=_PROBE_TIMEOUT, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


def _free_port() -> int:
    """A port of 127.0.0.1 that is free now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
