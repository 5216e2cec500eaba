"""Idempotency-Key records: the first answer to a (principal, key) pair is stored and replayed.

`claim` inserts a row locked for a short lease; a retry with the same key and body gets the stored answer,
with another body a 422, and while the first request is still running a 409 (with a short Retry-After). Answers
of 5xx are not stored, so the client may retry. If a process dies mid-request, its lease runs out and a retry
runs again — every money-moving operation behind it is idempotent by construction (see billing/sessions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from billing.unit_of_work import Database
from kernel.errors import Conflict, InvalidRequest

LEASE_SECONDS = 30
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: str


async def claim(conn: asyncpg.Connection, scope: str, key: str, request_hash: bytes) -> StoredAnswer | None:
    """Claim the key for this request; returns a stored answer to replay, or None when the caller should run."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                             code="invalid_idempotency_key")
    row = await conn.fetchrow(
        """
        INSERT INTO idempotency_keys (scope, key, request_hash, locked_until)
        VALUES ($1, $2, $3, now() + make_interval(secs => $4))
        ON CONFLICT (scope, key) DO UPDATE
           SET locked_until = EXCLUDED.locked_until
         WHERE idempotency_keys.status_code IS NULL AND idempotency_keys.locked_until < now()
               AND idempotency_keys.request_hash = EXCLUDED.request_hash
        RETURNING (xmax = 0) AS inserted
        """,
        scope, key, request_hash, LEASE_SECONDS,
    )
    if row is not None:
        return None  # newly claimed, or an abandoned claim taken over
    existing = await conn.fetchrow(
        "SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2",
        scope, key,
    )
    if existing["request_hash"] != request_hash:
        raise InvalidRequest("this Idempotency-Key was used with a different request", code="idempotency_key_reused")
    if existing["status_code"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_progress")
    return StoredAnswer(existing["status_code"], existing["response_body"])


async def complete(conn: asyncpg.Connection, scope: str, key: str, status_code: int, body: str) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response_body = $4 WHERE scope = $1 AND key = $2",
        scope, key, status_code, body,
    )


async def release(conn: asyncpg.Connection, scope: str, key: str) -> None:
    """Forget a claim whose request failed on our side (5xx), so a retry runs again."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status_code IS NULL", scope, key
    )


class IdempotencyService:
    """Claims and answers of Idempotency-Keys, for the gateway's middleware."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, scope: str, key: str, request_hash: bytes) -> StoredAnswer | None:
        async with self.db.connection() as conn:
            return await claim(conn, scope, key, request_hash)

    async def complete(self, scope: str, key: str, status_code: int, body: str) -> None:
        async with self.db.connection() as conn:
            await complete(conn, scope, key, status_code, body)

    async def release(self, scope: str, key: str) -> None:
        async with self.db.connection() as conn:
            await release(conn, scope, key)
