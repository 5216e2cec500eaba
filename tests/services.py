"""Session fixtures for the real PostgreSQL and Redis the tests use (registered through `pytest_plugins`).

- `pg_server_dsn`: TEST_DATABASE_URL if set; else the machine's PostgreSQL, else a private one started for the run.
- `migrated_template`: a database with every migration applied, made once per run; `database_dsn` gives each test
  its own fresh copy of it (`CREATE DATABASE ... TEMPLATE`), dropped after the test.
- `redis_url`: TEST_REDIS_URL if set; else the machine's Redis, else a private one. `redis_prefix` gives each test its
  own key prefix; the shared server is never flushed, the test's own keys are deleted after it.
- `pgbouncer`: Debian's PgBouncer in transaction pooling mode in front of `pg_server_dsn`'s server, once per run
  (tests that need it are skipped, saying why, when it is not installed; .ci/run installs it).
- `replicated_database`: a throwaway private primary (initdb) with a migrated database, and a streaming replica of
  it made with `pg_basebackup -R`, for one test.

Every database made here is named `paygo_<purpose>_<pid>_<random>`, so runs side by side do not meet.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis

from billing.schema import migrate
from paygo.embedded import (
    EmbeddedPgBouncer,
    EmbeddedPostgres,
    create_database,
    drop_database,
    dsn_for_database,
    find_or_start_postgres,
    find_or_start_redis,
    start_pgbouncer,
    start_private_postgres,
    start_private_replica,
)


def unique_name(purpose: str) -> str:
    """A database name or key prefix no other test run uses: `paygo_<purpose>_<pid>_<random>`."""
    return f"paygo_{purpose}_{os.getpid()}_{secrets.token_hex(4)}"


async def make_migrated_database(server_dsn: str, name: str, folder: Traversable) -> None:
    """Creates database `name` and applies the migrations of `folder` to it."""
    await create_database(server_dsn, name)
    conn = await asyncpg.connect(dsn_for_database(server_dsn, name))
    try:
        await migrate(conn, folder)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def services_state_dir() -> Iterator[Path]:
    """Files of the private servers this run may start. Readable by all: a private PostgreSQL started as root runs
    as the `postgres` user, who must reach it."""
    state_dir = Path(tempfile.mkdtemp(prefix="paygo-test-services-"))
    state_dir.chmod(0o755)
    yield state_dir
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_server_dsn(services_state_dir: Path) -> AsyncIterator[str]:
    """A DSN of a PostgreSQL server on which the tests may create and drop databases."""
    if configured := os.environ.get("TEST_DATABASE_URL"):
        yield configured
        return
    server = await find_or_start_postgres(services_state_dir, "postgres")
    try:
        yield server.dsn
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def migrations_folder() -> Traversable:
    """The migrations every test database gets: the project's own."""
    return files("migrations")


@pytest.fixture(scope="session")
async def migrated_template(pg_server_dsn: str, migrations_folder: Traversable) -> AsyncIterator[str]:
    """The name of a database with every migration applied, which `database_dsn` copies for each test."""
    name = unique_name("tmpl")
    try:
        await make_migrated_database(pg_server_dsn, name, migrations_folder)
        yield name
    finally:
        await drop_database(pg_server_dsn, name)


@pytest.fixture
async def database_dsn(pg_server_dsn: str, migrated_template: str) -> AsyncIterator[str]:
    """A DSN of a fresh, fully migrated database of this test's own, dropped after it."""
    name = unique_name("test")
    await create_database(pg_server_dsn, name, template=migrated_template)
    try:
        yield dsn_for_database(pg_server_dsn, name)
    finally:
        await drop_database(pg_server_dsn, name)


@pytest.fixture(scope="session")
async def redis_url(services_state_dir: Path) -> AsyncIterator[str]:
    """A URL of a Redis server the tests share (each test keeps to its `redis_prefix`)."""
    if configured := os.environ.get("TEST_REDIS_URL"):
        yield configured
        return
    server = await find_or_start_redis(services_state_dir)
    if server is None:
        pytest.fail("no Redis: none answers on 127.0.0.1:6379 and redis-server is not installed; set TEST_REDIS_URL")
    try:
        yield server.url
    finally:
        await server.stop()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted after the test (the server is never flushed)."""
    prefix = unique_name("test") + ":"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def pgbouncer(services_state_dir: Path, pg_server_dsn: str) -> AsyncIterator[EmbeddedPgBouncer]:
    """PgBouncer (transaction pooling) in front of the test server: `pgbouncer.dsn(database_dsn)` goes through it."""
    if shutil.which("pgbouncer", path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin"))) is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)")
    bouncer = await start_pgbouncer(services_state_dir, pg_server_dsn)
    try:
        yield bouncer
    finally:
        await bouncer.stop()


@dataclass
class ReplicatedDatabase:
    """A migrated database on a private primary, and the same database on its streaming replica."""

    primary_dsn: str
    replica_dsn: str
    replica: EmbeddedPostgres


@pytest.fixture
def replication_state_dir() -> Iterator[Path]:
    """Files of one test's primary and replica (readable by all, as `services_state_dir`)."""
    state_dir = Path(tempfile.mkdtemp(prefix="paygo-test-replica-"))
    state_dir.chmod(0o755)
    yield state_dir
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
async def replicated_database(replication_state_dir: Path,
                              migrations_folder: Traversable) -> AsyncIterator[ReplicatedDatabase]:
    primary = await start_private_postgres(replication_state_dir, "postgres")
    try:
        await make_migrated_database(primary.dsn, "paygo", migrations_folder)
        replica = await start_private_replica(replication_state_dir, primary.dsn)
        try:
            yield ReplicatedDatabase(dsn_for_database(primary.dsn, "paygo"), dsn_for_database(replica.dsn, "paygo"),
                                     replica)
        finally:
            await replica.stop()
    finally:
        await primary.stop()
