"""Vendor API key rotation and revocation.

Rotation makes a new key (shown once) and lets every key that was live keep working for an overlap window, so a
vendor can roll the new key out to its servers without an outage. Revocation ends keys at once: all of a
vendor's live keys, or the one named by its prefix (the first characters of the key, stored in clear to name it).
Both lock the vendor's row, so two rotations at the same moment take turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from billing.vendors import add_key, shown_key_prefix, stored_key_prefix
from kernel.errors import InvalidRequest, NotFound

MAX_OVERLAP_SECONDS = 30 * 86400

_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


@dataclass(frozen=True, slots=True)
class RotatedKey:
    vendor_id: UUID
    api_key: str  # shown once
    key_prefix: str
    previous_keys_expire_at: datetime | None  # None when the vendor had no live key before


@dataclass(frozen=True, slots=True)
class VendorKey:
    key_prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    live: bool


async def _lock_vendor(conn: asyncpg.Connection, vendor_id: UUID) -> None:
    if await conn.fetchval("SELECT id FROM vendors WHERE id = $1 FOR UPDATE", vendor_id) is None:
        raise NotFound("no vendor with this id", code="vendor_not_found")


async def rotate_key(conn: asyncpg.Connection, vendor_id: UUID, overlap_seconds: int) -> RotatedKey:
    """A new key for the vendor; its live keys stay valid for `overlap_seconds` more (never longer than before)."""
    if isinstance(overlap_seconds, bool) or not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidRequest(f"overlap_seconds must be a whole number from 0 to {MAX_OVERLAP_SECONDS}",
                             code="invalid_overlap")
    async with conn.transaction():
        await _lock_vendor(conn, vendor_id)
        previous_expiry = await conn.fetchval(
            f"""
            WITH ended AS (
                UPDATE vendor_api_keys
                   SET expires_at = least(coalesce(expires_at, 'infinity'), now() + $2::integer * interval '1 second')
                 WHERE vendor_id = $1 AND {_LIVE}
             RETURNING expires_at
            )
            SELECT max(expires_at) FROM ended
            """,
            vendor_id, overlap_seconds,
        )
        api_key = await add_key(conn, vendor_id)
    return RotatedKey(vendor_id, api_key, shown_key_prefix(stored_key_prefix(api_key)), previous_expiry)


async def revoke_keys(conn: asyncpg.Connection, vendor_id: UUID, key_prefix: str | None = None) -> int:
    """Revoke the vendor's live keys now (only the one with `key_prefix`, when given); returns how many."""
    async with conn.transaction():
        await _lock_vendor(conn, vendor_id)
        revoked = await conn.fetchval(
            f"""
            WITH revoked AS (
                UPDATE vendor_api_keys SET revoked_at = now()
                 WHERE vendor_id = $1 AND {_LIVE} AND ($2::text IS NULL OR key_prefix = $2)
             RETURNING id
            )
            SELECT count(*) FROM revoked
            """,
            vendor_id, stored_key_prefix(key_prefix) if key_prefix is not None else None,
        )
    if key_prefix is not None and revoked == 0:
        raise NotFound("the vendor has no live key with this prefix", code="key_not_found")
    return revoked


async def list_keys(conn: asyncpg.Connection, vendor_id: UUID) -> list[VendorKey]:
    """Every key the vendor ever had, newest first (prefixes and dates only: the keys themselves are not kept)."""
    if await conn.fetchval("SELECT id FROM vendors WHERE id = $1", vendor_id) is None:
        raise NotFound("no vendor with this id", code="vendor_not_found")
    rows = await conn.fetch(
        f"""
        SELECT key_prefix, created_at, expires_at, revoked_at, ({_LIVE}) AS live
          FROM vendor_api_keys WHERE vendor_id = $1 ORDER BY created_at DESC, id DESC
        """,
        vendor_id,
    )
    return [VendorKey(**{**dict(row), "key_prefix": shown_key_prefix(row["key_prefix"])}) for row in rows]
