"""A streaming replica for the reads that may lag a little: vendor lists, summaries and CSV, the operator's reports
and dashboards, and the `/metrics` gauges (`DATABASE_READ_URL`).

Money paths, authentication, and anything a caller just wrote read the primary. When the replica fails a read (it
cannot be reached, a connection dies, or it cancels a query that conflicts with replay), the read runs again on the
primary at once, and the replica is left alone for `RETRY_SECONDS` before it is tried again; health says which
server serves these reads and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncpg

from billing.db import DATABASE_DOWN_ERRORS

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0  # a replica that does not answer must not hold a read for long
CHECK_TIMEOUT_SECONDS = 3.0

# What sends a read back to the primary: the replica is unreachable, or it cancelled the query because replaying the
# primary's changes needed the rows it was reading (a recovery conflict, SQLSTATE 40001).
REPLICA_FAILURES: tuple[type[BaseException], ...] = (*DATABASE_DOWN_ERRORS, asyncpg.exceptions.SerializationError)


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    up: bool
    in_recovery: bool | None = None  # True for a streaming replica; False would mean it was promoted
    replay_lsn: str | None = None  # how far it has replayed the primary's WAL
    error: str | None = None  # the last failure's type name while reads go to the primary


class ReadReplica:
    """The replica's pool and whether it serves reads now."""

    def __init__(self, pool: asyncpg.Pool, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.pool = pool
        self.retry_seconds = retry_seconds
        self.error: str | None = None
        self._retry_at = 0.0

    @property
    def available(self) -> bool:
        """Up, or down long enough ago to be tried again."""
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        if self.error is None:
            log.warning("read replica failed (%s): reads go to the primary", type(exc).__name__)
        self.error = type(exc).__name__
        self._retry_at = time.monotonic() + self.retry_seconds

    def served(self) -> None:
        if self.error is not None:
            log.info("read replica is back: reads go to it again")
        self.error = None
        self._retry_at = 0.0

    async def check(self) -> ReplicaHealth:
        """Ask the replica whether it answers and how far it has replayed (for health); updates `available`."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                row = await conn.fetchrow("SELECT pg_is_in_recovery() AS in_recovery,"
                                          " pg_last_wal_replay_lsn()::text AS replay_lsn")
        except REPLICA_FAILURES as exc:
            self.failed(exc)
            return ReplicaHealth(up=False, error=self.error)
        self.served()
        return ReplicaHealth(up=True, in_recovery=row["in_recovery"], replay_lsn=row["replay_lsn"])
