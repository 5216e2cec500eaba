"""The migration runner against a real PostgreSQL, with migration folders written by each test."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from billing.schema import MIGRATION_LOCK_KEY, MigrationError, migrate
from paygo.embedded import create_database, drop_database, dsn_for_database
from tests.services import unique_name


@pytest.fixture
async def empty_database_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    name = unique_name("schema")
    await create_database(pg_server_dsn, name)
    try:
        yield dsn_for_database(pg_server_dsn, name)
    finally:
        await drop_database(pg_server_dsn, name)


@pytest.fixture
async def conn(empty_database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_dsn)
    try:
        yield connection
    finally:
        await connection.close()


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def table_exists(conn: asyncpg.Connection, table: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)


async def applied_versions(conn: asyncpg.Connection) -> list[int]:
    return [row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]


async def test_applies_files_in_version_order_and_records_them(conn: asyncpg.Connection, tmp_path: Path) -> None:
    # Written out of order, and each file needs the one before it.
    folder = write_migrations(
        tmp_path / "migrations",
        {
            "0010_index_amount.sql": "CREATE INDEX accounts_amount ON accounts (amount);",
            "0002_add_amount.sql": "ALTER TABLE accounts ADD COLUMN amount numeric(78, 0) NOT NULL DEFAULT 0;",
            "0001_create_accounts.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY);\n"
            "INSERT INTO accounts (id) VALUES (1);",
            "__init__.py": "",
        },
    )

    applied = await migrate(conn, folder)

    assert applied == ["0001_create_accounts.sql", "0002_add_amount.sql", "0010_index_amount.sql"]
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
    assert [(row["version"], row["name"]) for row in rows] == [
        (1, "0001_create_accounts.sql"),
        (2, "0002_add_amount.sql"),
        (10, "0010_index_amount.sql"),
    ]
    for row in rows:
        assert row["checksum"] == hashlib.sha256((folder / row["name"]).read_bytes()).hexdigest()
        assert row["applied_at"] is not None
    assert await table_exists(conn, "accounts_amount")


async def test_rerun_is_a_no_op_and_applies_only_new_files(conn: asyncpg.Connection, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "migrations", {"0001_create.sql": "CREATE TABLE first_table (id int);"})
    assert await migrate(conn, folder) == ["0001_create.sql"]

    assert await migrate(conn, folder) == []

    write_migrations(folder, {"0002_more.sql": "CREATE TABLE second_table (id int);"})
    assert await migrate(conn, folder) == ["0002_more.sql"]
    assert await applied_versions(conn) == [1, 2]


async def test_changed_file_is_refused_before_anything_runs(conn: asyncpg.Connection, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "migrations", {"0001_create.sql": "CREATE TABLE first_table (id int);"})
    await migrate(conn, folder)
    write_migrations(
        folder,
        {
            "0001_create.sql": "CREATE TABLE first_table (id bigint);",
            "0002_more.sql": "CREATE TABLE second_table (id int);",
        },
    )

    with pytest.raises(MigrationError, match=r"0001_create\.sql changed after it was applied"):
        await migrate(conn, folder)

    assert await applied_versions(conn) == [1]
    assert not await table_exists(conn, "second_table")


async def test_failing_file_is_rolled_back_and_named(conn: asyncpg.Connection, tmp_path: Path) -> None:
    folder = write_migrations(
        tmp_path / "migrations",
        {
            "0001_good.sql": "CREATE TABLE good_table (id int);",
            # The first statement succeeds, the second fails: neither may remain.
            "0002_broken.sql": "CREATE TABLE half_table (id int);\nSELECT no_such_function();",
            "0003_after.sql": "CREATE TABLE after_table (id int);",
        },
    )

    with pytest.raises(MigrationError, match=r"migration 0002_broken\.sql failed.*no_such_function"):
        await migrate(conn, folder)

    assert await applied_versions(conn) == [1]
    assert await table_exists(conn, "good_table")
    assert not await table_exists(conn, "half_table")
    assert not await table_exists(conn, "after_table")

    # Once fixed (it was never applied, so it may change), the run carries on where it stopped.
    write_migrations(folder, {"0002_broken.sql": "CREATE TABLE half_table (id int);"})
    assert await migrate(conn, folder) == ["0002_broken.sql", "0003_after.sql"]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"init.sql": "SELECT 1;"}, r"'init\.sql' is not named NNNN_name\.sql"),
        ({"1_init.sql": "SELECT 1;"}, r"'1_init\.sql' is not named NNNN_name\.sql"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, r"share version 1"),
    ],
)
async def test_badly_named_files_are_refused(
    conn: asyncpg.Connection, tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    folder = write_migrations(tmp_path / "migrations", files)

    with pytest.raises(MigrationError, match=problem):
        await migrate(conn, folder)


async def test_concurrent_runners_take_turns_under_the_advisory_lock(empty_database_dsn: str, tmp_path: Path) -> None:
    # Plain CREATE TABLE: a file applied twice would fail.
    folder = write_migrations(
        tmp_path / "migrations",
        {"0001_one.sql": "CREATE TABLE one_table (id int);", "0002_two.sql": "CREATE TABLE two_table (id int);"},
    )
    holder, runner_a, runner_b = [await asyncpg.connect(empty_database_dsn) for _ in range(3)]
    try:
        # Hold the lock so that both runners are surely waiting on it at once, then let them go together.
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        runs = [asyncio.create_task(migrate(runner, folder)) for runner in (runner_a, runner_b)]
        await wait_for_lock_waiters(holder, expected=2)
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)

        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=30)

        assert sorted(results) == [[], ["0001_one.sql", "0002_two.sql"]]
        assert await applied_versions(holder) == [1, 2]
    finally:
        for connection in (holder, runner_a, runner_b):
            await connection.close()


async def wait_for_lock_waiters(conn: asyncpg.Connection, expected: int) -> None:
    """Polls pg_locks until `expected` sessions wait for an advisory lock in this database."""
    async with asyncio.timeout(10):
        while True:
            waiting = await conn.fetchval(
                """
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND NOT granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """
            )
            if waiting == expected:
                return
            await asyncio.sleep(0.01)
