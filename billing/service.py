"""The billing service: what the gateway (and the CLI) asks of billing, over a pool and the funding sources.

Each method holds a pooled connection only for its database work, never across a call to a node or processor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from billing.assets import Asset, AssetRegistry
from billing.cache import PermissionCache
from billing.errors import InvalidRequest, NotFound, ServiceUnavailable
from billing.money import parse_amount
from billing.permissions import (
    NewPermission,
    PaymentRow,
    Permission,
    PermissionStatus,
    apply_payments,
    get_permission,
    insert_permission,
    latest_permission_for_wallet,
    payments_of,
    permission_id_for_token,
)
from billing.secrets import new_permission_token, secret_hash
from billing.sessions import OpenedSession, Session, end_session, open_session, session_by_code
from billing.vendors import NewVendor, create_vendor, vendor_for_key
from chains.base import FundingRequest, FundingSource, PaymentTarget


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A request for a new permission, as received (amounts not parsed yet)."""

    funding_source: str
    asset: str
    user_wallet_address: str
    requested_amount: object
    rate_per_hour: object
    duration_days: object | None = None


@dataclass(frozen=True, slots=True)
class CreatedPermission:
    permission: Permission
    permission_token: str  # shown once


@dataclass(frozen=True, slots=True)
class PermissionState:
    permission: Permission
    payments: list[PaymentRow]
    now: datetime


class BillingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sources: dict[str, FundingSource],
        assets: AssetRegistry,
        cache: PermissionCache,
        *,
        default_duration_days: int,
        max_duration_days: int,
        max_amount_units: dict[str, int],
        min_confirmations: dict[str, int],
    ) -> None:
        self.pool = pool
        self.sources = sources
        self.assets = assets
        self.cache = cache
        self.default_duration_days = default_duration_days
        self.max_duration_days = max_duration_days
        self.max_amount_units = max_amount_units
        self.min_confirmations = min_confirmations

    def source(self, name: str) -> FundingSource:
        source = self.sources.get(name)
        if source is None:
            raise ServiceUnavailable(f"{name} funding is not configured on this gateway",
                                     code=f"{name}_not_configured", retry_after=3600)
        return source

    def asset_for(self, funding_source: str, code: str) -> Asset:
        asset = self.assets.get(code)
        if asset is None or asset.funding_source != funding_source:
            accepted = ", ".join(a.code for a in self.assets.for_funding_source(funding_source))
            raise InvalidRequest(f"asset {code!r} is not accepted here (accepted: {accepted})", code="invalid_asset")
        return asset

    def _duration(self, raw: object | None) -> int:
        if raw is None:
            return self.default_duration_days
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= self.max_duration_days:
            raise InvalidRequest(f"duration_days must be a whole number from 1 to {self.max_duration_days}",
                                 code="invalid_duration")
        return raw

    async def create_permission(self, request: PermissionRequest) -> CreatedPermission:
        source = self.source(request.funding_source)
        asset = self.asset_for(request.funding_source, request.asset)
        wallet = source.validate_address(request.user_wallet_address)
        maximum = self.max_amount_units.get(asset.code)
        amount = parse_amount(request.requested_amount, asset, "requested_amount", maximum)
        rate = parse_amount(request.rate_per_hour, asset, "rate_per_hour", maximum)
        duration = self._duration(request.duration_days)
        permission_id = uuid4()
        instructions = await source.prepare_funding(
            FundingRequest(reference=str(permission_id), asset=asset.code, amount_units=amount, payer=wallet)
        )
        token = new_permission_token()
        async with self.pool.acquire() as conn:
            permission = await insert_permission(conn, NewPermission(
                id=permission_id, funding_source=source.name, asset=asset.code, asset_decimals=asset.decimals,
                user_wallet_address=wallet, token_hash=secret_hash(token), approved_amount=amount,
                rate_per_hour=rate, duration_days=duration, payment_address=instructions.payment_address,
                payment_locator=instructions.locator, checkout_url=instructions.checkout_url,
            ))
        return CreatedPermission(permission, token)

    async def permission_for_token(self, token: str) -> UUID | None:
        async with self.pool.acquire() as conn:
            return await permission_id_for_token(conn, secret_hash(token))

    async def permission_state(self, permission_id: UUID) -> PermissionState:
        cached = await self.cache.get(permission_id)
        if cached is not None:
            return _state_from_cache(cached)
        async with self.pool.acquire() as conn:
            permission = await get_permission(conn, permission_id)
            if permission is None:
                raise NotFound("permission not found", code="permission_not_found")
            state = PermissionState(permission, await payments_of(conn, permission_id),
                                    await conn.fetchval("SELECT now()"))
        await self.cache.put(permission_id, _state_to_cache(state))
        return state

    async def wallet_permission(self, funding_source: str, address: str) -> Permission | None:
        wallet = self.source(funding_source).validate_address(address)
        async with self.pool.acquire() as conn:
            return await latest_permission_for_wallet(conn, funding_source, wallet)

    async def verify_permission(self, permission_id: UUID, hints: tuple[str, ...] = ()) -> PermissionState:
        """Ask the funding source what reached the permission's address and credit what is confirmed.

        `hints` are transaction ids the user says paid it (Ethereum verify takes tx hashes)."""
        async with self.pool.acquire() as conn:
            permission = await get_permission(conn, permission_id)
        if permission is None:
            raise NotFound("permission not found", code="permission_not_found")
        if permission.payment_address is not None or permission.payment_locator is not None:
            source = self.source(permission.funding_source)
            target = PaymentTarget(key=str(permission.id), asset=permission.asset,
                                   payment_address=permission.payment_address,
                                   locator=permission.payment_locator or "", payer=permission.user_wallet_address,
                                   hints=hints)
            seen = (await source.find_payments([target])).get(target.key, [])
            async with self.pool.acquire() as conn:
                await apply_payments(conn, permission.id, seen,
                                     min_confirmations=self.min_confirmations.get(permission.funding_source, 1))
            await self.cache.invalidate(permission.id)
        return await self.permission_state(permission_id)

    async def open_session(self, permission_id: UUID, user_wallet_address: str, vendor_id: UUID) -> OpenedSession:
        async with self.pool.acquire() as conn:
            opened = await open_session(conn, permission_id, user_wallet_address=user_wallet_address,
                                        vendor_id=vendor_id)
        return opened

    async def end_session(self, session_code: str) -> tuple[Session, Permission]:
        async with self.pool.acquire() as conn:
            session, permission = await end_session(conn, session_code)
        await self.cache.invalidate(permission.id)
        return session, permission

    async def session_state(self, session_code: str) -> tuple[Session, Permission, datetime]:
        async with self.pool.acquire() as conn:
            session = await session_by_code(conn, session_code)
            if session is None:
                raise NotFound("no session with this session_code", code="session_not_found")
            permission = await get_permission(conn, session.permission_id)
            now = await conn.fetchval("SELECT now()")
        assert permission is not None
        return session, permission, now

    async def create_vendor(self, name: str) -> NewVendor:
        async with self.pool.acquire() as conn:
            return await create_vendor(conn, name)

    async def vendor_for_key(self, api_key: str) -> UUID | None:
        async with self.pool.acquire() as conn:
            return await vendor_for_key(conn, api_key)


def _state_to_cache(state: PermissionState) -> dict[str, Any]:
    return {
        "permission": asdict(state.permission),
        "payments": [asdict(p) for p in state.payments],
    }


def _state_from_cache(data: dict[str, Any]) -> PermissionState:
    raw = data["permission"]
    permission = Permission(**{
        **raw,
        "id": UUID(raw["id"]),
        "status": PermissionStatus(raw["status"]),
        "created_at": datetime.fromisoformat(raw["created_at"]),
        "activated_at": datetime.fromisoformat(raw["activated_at"]) if raw["activated_at"] else None,
        "expires_at": datetime.fromisoformat(raw["expires_at"]),
    })
    payments = [PaymentRow(**{**p, "first_seen_at": datetime.fromisoformat(p["first_seen_at"])})
                for p in data["payments"]]
    return PermissionState(permission, payments, datetime.now(UTC))
