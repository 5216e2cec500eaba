"""Database connections: the pool and the codecs every connection gets.

Amounts are numeric(78,0) columns. The numeric codec decodes whole numbers to `int` and anything with a
fraction to `Decimal` (never float), and encodes ints and Decimals exactly, so money code works with ints only.
"""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg

from kernel.errors import ServiceUnavailable

DATABASE_RETRY_AFTER_SECONDS = 2

# Errors that mean "the database is not answering", as opposed to a bug or a constraint.
DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)


def _decode_numeric(text: str) -> int | Decimal:
    if "." in text or "e" in text or "E" in text or text in {"NaN", "Infinity", "-Infinity"}:
        return Decimal(text)
    return int(text)


def _encode_numeric(value: int | Decimal | str) -> str:
    if isinstance(value, float):  # pragma: no cover - a programming error, refused loudly
        raise TypeError("floats are never money: pass int or Decimal")
    return str(value)


# One encoder and one decoder for every json/jsonb value: json.dumps and json.loads with options build a new one on
# every call, which showed in the hot path's profile.
_JSON_ENCODER = json.JSONEncoder(default=str)
_JSON_DECODER = json.JSONDecoder(parse_float=Decimal)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs for every pooled connection: numeric ↔ int/Decimal, json/jsonb ↔ Python objects (Decimal-exact)."""
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=_encode_numeric, decoder=_decode_numeric, format="text"
    )
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=_JSON_ENCODER.encode,
            decoder=_JSON_DECODER.decode,
            format="text",
        )


class PooledConnection(asyncpg.Connection):
    """A connection that skips asyncpg's reset query (`RESET ALL; UNLISTEN *; pg_advisory_unlock_all(); ...`)
    when it goes back to the pool: that is one more round trip per acquire, on every request, to undo session
    state this code never leaves behind (no LISTEN, no session settings, advisory locks only transaction-scoped or
    released explicitly). asyncpg still rolls back any open transaction on release."""

    def get_reset_query(self) -> str:
        return ""


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection of its own with our codecs (migrations, one-shot work); ServiceUnavailable when unreachable."""
    try:
        conn = await asyncpg.connect(dsn)
    except DATABASE_DOWN_ERRORS as exc:
        raise ServiceUnavailable(
            f"database unreachable ({type(exc).__name__})", code="database_unavailable",
            retry_after=DATABASE_RETRY_AFTER_SECONDS,
        ) from exc
    await init_connection(conn)
    return conn


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20, statement_cache_size: int = 100,
                      connect_timeout: float = 60.0) -> asyncpg.Pool:
    """A pool whose connections carry our codecs; raises ServiceUnavailable when the server cannot be reached.

    `statement_cache_size=0` is for PgBouncer in transaction pooling mode before 1.21: asyncpg then prepares each
    statement unnamed and sends it again with its execution, so no statement outlives the transaction (and the
    server connection) it ran on. With `min_size=0` nothing is connected until first use (a replica that is down
    at start-up does not stop the gateway)."""
    try:
        return await asyncpg.create_pool(
            dsn, min_size=min(min_size, max_size), max_size=max_size, init=init_connection, command_timeout=30,
            connection_class=PooledConnection, statement_cache_size=statement_cache_size, timeout=connect_timeout,
        )
    except DATABASE_DOWN_ERRORS as exc:
        raise ServiceUnavailable(
            f"database unreachable ({type(exc).__name__})", code="database_unavailable",
            retry_after=DATABASE_RETRY_AFTER_SECONDS,
        ) from exc
