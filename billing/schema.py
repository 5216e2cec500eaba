"""The migration runner: applies `migrations/NNNN_name.sql` in order, once each.

Rules:
- Files are named `NNNN_name.sql` (four digits, then lower-case words); they apply in version order.
- Each file runs in its own transaction together with its row in `schema_migrations`, so a file is either fully
  applied and recorded or not at all. A file therefore cannot hold statements that refuse to run in a transaction
  (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
- The whole run holds a PostgreSQL advisory lock (`MIGRATION_LOCK_KEY`), so processes that start at once take turns:
  the first applies the pending files, the others then find nothing to do.
- An applied file must never change: the runner compares SHA-256 checksums and refuses to run when one differs.
  Fix a mistake with a new file instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

# "paygomig" read as a big-endian 64-bit integer. Fixed, so every PayGo process takes the same lock.
MIGRATION_LOCK_KEY = 8097887090146896231

_FILE_NAME = re.compile(r"(?P<version>\d{4})_[a-z0-9_]+\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     int PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The schema cannot be brought up to date: a bad file name, a changed file, or a file that failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name, e.g. "0001_core.sql"
    sql: str
    checksum: str  # SHA-256 of the file's bytes, hex


def load_migrations(folder: Traversable) -> list[Migration]:
    """Reads every `.sql` file of `folder`, sorted by version; other files (an `__init__.py`) are ignored."""
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.is_file() or not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"migration files {migrations[version].name!r} and {entry.name!r} share version {version}"
            )
        content = entry.read_bytes()
        migrations[version] = Migration(
            version=version,
            name=entry.name,
            sql=content.decode("utf-8"),
            checksum=hashlib.sha256(content).hexdigest(),
        )
    return [migrations[version] for version in sorted(migrations)]


async def migrate(conn: asyncpg.Connection, folder: Traversable | None = None) -> list[str]:
    """Applies the pending migrations of `folder` (default: the `migrations` package) and returns their file names.

    Raises MigrationError, before applying anything, when an applied file's checksum changed; and when a file fails,
    naming it (that file is rolled back, the ones before it stay applied, the ones after it are not run).
    """
    migrations = load_migrations(folder if folder is not None else files("migrations"))
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {
            row["version"]: row
            for row in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        }
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None and row["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} changed after it was applied (as {row['name']}); "
                    "applied files must not change: add a new migration instead"
                )
        applied_now: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as error:
                raise MigrationError(f"migration {migration.name} failed and was rolled back: {error}") from error
            applied_now.append(migration.name)
        return applied_now
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
