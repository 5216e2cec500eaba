"""Streaming sessions as the gateway asks for them: open, end (with the final charge), read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from billing.direct_charges import DirectCharge, allocate_direct_charge_addresses, direct_charge_of_session
from billing.permissions import Permission, TokenHolder, get_permission
from billing.sessions import OpenedSession, Session, end_session, open_session, session_by_code
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.assets import Asset
from kernel.errors import Forbidden, NotFound


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session with its permission (for what is left), the database's `now`, and its direct charge if any."""

    session: Session
    permission: Permission
    asset: Asset
    now: datetime
    direct_charge: DirectCharge | None = None


class SessionService:
    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources

    async def open(self, holder: TokenHolder, user_wallet_address: str, vendor_id: UUID) -> OpenedSession:
        """Open a session on the token's permission; the wallet must be the permission's (normalised by its source)."""
        wallet = self.sources.source(holder.funding_source).validate_address(user_wallet_address)
        async with self.db.transaction() as work:
            opened = await open_session(work.conn, holder.permission_id, user_wallet_address=wallet,
                                        vendor_id=vendor_id)
            work.changed(permissions=[holder.permission_id], sessions=[opened.session.id])
        return opened

    async def end(self, session_code: str) -> SessionState:
        """End a session with its final charge; ending it again answers the same and charges nothing."""
        async with self.db.transaction() as work:
            session, permission = await end_session(work.conn, session_code)
            work.changed(permissions=[permission.id], sessions=[session.id])
        return await self._with_direct_charge(session, permission, session.ended_at or session.started_at)

    async def state(self, session_code: str, permission_id: UUID, *, with_direct_charge: bool = True) -> SessionState:
        """The session as its permission's token holder sees it (403 for another permission's session)."""
        async with self.db.connection() as conn:
            session = await session_by_code(conn, session_code)
            if session is None:
                raise NotFound("no session with this session_code", code="session_not_found")
            if session.permission_id != permission_id:
                raise Forbidden("this session belongs to another permission", code="forbidden")
            permission = await get_permission(conn, session.permission_id)
            now = await conn.fetchval("SELECT now()")
        assert permission is not None  # sessions reference permissions with a foreign key
        if not with_direct_charge:
            return SessionState(session, permission, self.sources.assets[permission.asset], now)
        return await self._with_direct_charge(session, permission, now)

    async def _with_direct_charge(self, session: Session, permission: Permission, now: datetime) -> SessionState:
        """The state, with the session's direct charge (given its payment address first if the scheduler has not
        yet) when the permission could not cover it all."""
        asset = self.sources.assets[permission.asset]
        if not session.uncovered_amount:
            return SessionState(session, permission, asset, now)
        async with self.db.connection() as conn:
            charge = await direct_charge_of_session(conn, session.id)
        if charge is not None and charge.payment_address is None and charge.status != "paid":
            await allocate_direct_charge_addresses(self.db.pool, self.sources.all, only=charge.id)
            async with self.db.connection() as conn:
                charge = await direct_charge_of_session(conn, session.id)
        return SessionState(session, permission, asset, now, charge)
