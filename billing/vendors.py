"""Vendors and their API keys (stored as hashes, shown once when made)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from billing.secrets import VENDOR_KEY_PREFIX, new_vendor_key, secret_hash
from kernel.errors import InvalidRequest

MAX_VENDOR_NAME_LENGTH = 200
MAX_GRACE_SECONDS = 86400
KEY_HINT_LENGTH = 4


@dataclass(frozen=True, slots=True)
class NewVendor:
    vendor_id: UUID
    name: str
    api_key: str  # shown once


async def create_vendor(conn: asyncpg.Connection, name: str, direct_charge_grace_seconds: int = 0) -> NewVendor:
    """A vendor with its first API key. `direct_charge_grace_seconds` > 0 lets its sessions run on a direct
    (on-chain) charge for that long after their permission ran dry (the hybrid fallback)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_VENDOR_NAME_LENGTH:
        raise InvalidRequest(f"name must be 1 to {MAX_VENDOR_NAME_LENGTH} characters", code="invalid_vendor_name")
    if not name.isprintable():  # the name reaches terminals (`paygo report`) and logs
        raise InvalidRequest("name must not contain control characters", code="invalid_vendor_name")
    if not 0 <= direct_charge_grace_seconds <= MAX_GRACE_SECONDS:
        raise InvalidRequest(f"direct_charge_grace_seconds must be from 0 to {MAX_GRACE_SECONDS}",
                             code="invalid_grace")
    async with conn.transaction():
        vendor_id = await conn.fetchval(
            "INSERT INTO vendors (name, direct_charge_grace_seconds) VALUES ($1, $2) RETURNING id",
            name, direct_charge_grace_seconds,
        )
        api_key = await add_key(conn, vendor_id)
    return NewVendor(vendor_id, name, api_key)


async def add_key(conn: asyncpg.Connection, vendor_id: UUID) -> str:
    """A new API key for the vendor; returns the key (shown once), stores its hash and a short prefix."""
    api_key = new_vendor_key()
    await conn.execute(
        "INSERT INTO vendor_api_keys (vendor_id, key_hash, key_prefix) VALUES ($1, $2, $3)",
        vendor_id, secret_hash(api_key), stored_key_prefix(api_key),
    )
    return api_key


def stored_key_prefix(shown: str) -> str:
    """What names a key in the database: the KEY_HINT_LENGTH characters after `pgv_` (24 random bits). The `pgv_`
    itself is not stored, so nothing in a dump looks like a key; answers show `pgv_` + the hint."""
    return shown.removeprefix(VENDOR_KEY_PREFIX)[:KEY_HINT_LENGTH]


def shown_key_prefix(stored: str) -> str:
    return VENDOR_KEY_PREFIX + stored


async def vendor_for_key(conn: asyncpg.Connection, api_key: str) -> UUID | None:
    """The vendor a key belongs to, if the key is known, not revoked and not past its overlap window."""
    return await conn.fetchval(
        """
        SELECT vendor_id FROM vendor_api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        """,
        secret_hash(api_key),
    )


async def rotate_demo_vendor_key(conn: asyncpg.Connection, name: str) -> NewVendor:
    """Demo mode: the vendor called `name` (made on first use) with a fresh key; its older keys are revoked."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('paygo.demo_vendor'))")
        vendor_id = await conn.fetchval("SELECT id FROM vendors WHERE name = $1 ORDER BY created_at LIMIT 1", name)
        if vendor_id is None:
            return await create_vendor(conn, name)
        await conn.execute(
            "UPDATE vendor_api_keys SET revoked_at = now() WHERE vendor_id = $1 AND revoked_at IS NULL", vendor_id
        )
        api_key = await add_key(conn, vendor_id)
    return NewVendor(vendor_id, name, api_key)
