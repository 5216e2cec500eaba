"""Finding the machine's PostgreSQL and Redis, starting private ones, and the database fixtures built on them."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis

from paygo.embedded import (
    LOCAL_POSTGRES_DSNS,
    LOCAL_REDIS_URL,
    create_database,
    drop_database,
    dsn_for_database,
    find_or_start_postgres,
    find_or_start_redis,
    start_private_postgres,
    start_private_redis,
)
from tests.services import make_migrated_database, unique_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def private_state_dir() -> Iterator[Path]:
    """A state directory the `postgres` user can reach (tmp_path is private to root)."""
    state_dir = Path(tempfile.mkdtemp(prefix="paygo-test-embedded-"))
    state_dir.chmod(0o755)
    yield state_dir
    shutil.rmtree(state_dir, ignore_errors=True)


async def port_is_closed(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def test_dsn_for_database_keeps_server_user_and_socket() -> None:
    assert dsn_for_database("postgresql://postgres@127.0.0.1:5432/postgres", "paygo") == (
        "postgresql://postgres@127.0.0.1:5432/paygo"
    )
    assert dsn_for_database("postgresql://postgres@/postgres?host=/var/run/postgresql", "a b") == (
        "postgresql://postgres@/a%20b?host=/var/run/postgresql"
    )


async def test_finds_the_running_postgres_and_creates_the_database(private_state_dir: Path) -> None:
    name = unique_name("found")
    try:
        server = await find_or_start_postgres(private_state_dir, name)
        again = await find_or_start_postgres(private_state_dir, name)  # the database exists now: still fine

        assert not server.started_here
        assert server.dsn == again.dsn == dsn_for_database(LOCAL_POSTGRES_DSNS[0], name)
        await server.stop()  # must leave the machine's server alone
        conn = await asyncpg.connect(server.dsn)
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
        assert not (private_state_dir / "pg").exists()
    finally:
        await drop_database(LOCAL_POSTGRES_DSNS[0], name)


async def test_private_postgres_starts_keeps_its_cluster_and_stops(private_state_dir: Path) -> None:
    server = await start_private_postgres(private_state_dir, "paygo_private")
    try:
        assert server.started_here
        assert server.process is not None
        if os.geteuid() == 0:
            assert Path(f"/proc/{server.process.pid}").stat().st_uid == pwd.getpwnam("postgres").pw_uid
        conn = await asyncpg.connect(server.dsn)
        assert await conn.fetchval("SELECT current_database()") == "paygo_private"
        assert await conn.fetchval("SELECT current_setting('data_directory')") == str(private_state_dir / "pg" / "data")
        await conn.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        await conn.close()
    finally:
        await server.stop()

    assert server.process.returncode == 0
    port = int(server.dsn.split(":")[-1].split("/")[0])
    assert await port_is_closed("127.0.0.1", port)

    # Started again on the same directory: the cluster is reused (no second initdb), on a new port.
    restarted = await start_private_postgres(private_state_dir, "paygo_private")
    try:
        conn = await asyncpg.connect(restarted.dsn)
        assert await conn.fetchval("SELECT id FROM kept") == 7
        await conn.close()
    finally:
        await restarted.stop()


async def test_finds_the_running_redis(private_state_dir: Path) -> None:
    server = await find_or_start_redis(private_state_dir)

    assert server is not None
    assert not server.started_here
    assert server.url == LOCAL_REDIS_URL
    await server.stop()


async def test_private_redis_starts_and_stops(private_state_dir: Path) -> None:
    server = await start_private_redis(private_state_dir)
    try:
        assert server.started_here
        client = redis.Redis.from_url(server.url)
        assert await client.set("probe", "1")
        assert await client.get("probe") == b"1"
        await client.aclose()
    finally:
        await server.stop()

    assert server.process is not None and server.process.returncode is not None
    assert await port_is_closed("127.0.0.1", int(server.url.rsplit(":", 1)[1].split("/")[0]))


async def test_private_server_dies_with_the_process_that_started_it(private_state_dir: Path) -> None:
    # A child Python starts a private Redis, says where, and is then killed without any chance to clean up.
    script = (
        "import asyncio, pathlib, sys\n"
        "from paygo.embedded import start_private_redis\n"
        "async def main():\n"
        f"    server = await start_private_redis(pathlib.Path({str(private_state_dir)!r}))\n"
        "    print(server.url, flush=True)\n"
        "    sys.stdin.read()\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = await asyncio.wait_for(asyncio.to_thread(parent.stdout.readline), timeout=30)
        port = int(url.strip().rsplit(":", 1)[1].split("/")[0])
        assert not await port_is_closed("127.0.0.1", port)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdin.close()
        parent.stdout.close()

    async with asyncio.timeout(10):
        while not await port_is_closed("127.0.0.1", port):
            await asyncio.sleep(0.02)


async def test_database_dsn_is_a_fresh_copy_of_the_migrated_template(
    database_dsn: str, migrated_template: str
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") != migrated_template
        applied = [row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()
    package_files = sorted(entry.name for entry in files("migrations").iterdir() if entry.name.endswith(".sql"))
    assert applied == package_files


async def test_clone_carries_the_template_and_stays_apart(pg_server_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_seed.sql").write_text("CREATE TABLE seeded (id int); INSERT INTO seeded VALUES (1);")
    template, clone = unique_name("tmpl"), unique_name("clone")
    try:
        await make_migrated_database(pg_server_dsn, template, folder)
        await create_database(pg_server_dsn, clone, template=template)

        clone_conn = await asyncpg.connect(dsn_for_database(pg_server_dsn, clone))
        assert await clone_conn.fetchval("SELECT array_agg(id) FROM seeded") == [1]
        await clone_conn.execute("INSERT INTO seeded VALUES (2)")
        await clone_conn.close()
        template_conn = await asyncpg.connect(dsn_for_database(pg_server_dsn, template))
        assert await template_conn.fetchval("SELECT array_agg(id) FROM seeded") == [1]
        await template_conn.close()
    finally:
        await drop_database(pg_server_dsn, clone)
        await drop_database(pg_server_dsn, template)


async def test_redis_prefix_is_the_tests_own(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        await client.set(redis_prefix + "key", "value")
        assert [key async for key in client.scan_iter(match=redis_prefix + "*")] == [(redis_prefix + "key").encode()]
    finally:
        await client.aclose()
