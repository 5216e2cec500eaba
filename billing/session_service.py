"""Streaming sessions as the gateway asks for them: open, end (with the final charge), read.

Each is one database round trip in the common case, authentication included: the token or the session code goes
into the one statement that does the work (billing/sessions.py). A second trip is made only when the caller spelt
the wallet otherwise than the permission stored it (its funding source normalises it, then the open runs again), or
when a session left some of its charge to a direct charge (its payment address is read, and made first if needed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from billing.direct_charges import DirectCharge, allocate_direct_charge_addresses, direct_charge_of_session
from billing.idempotency import ANONYMOUS, Caller, IdempotencyClaim, IdempotentCall, derive_claim
from billing.permissions import Permission
from billing.secrets import secret_hash
from billing.sessions import OpenedSession, Session, SessionRead, WalletDiffers, end_session, open_session, read_session
from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.assets import Asset
from kernel.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session with its permission (for what is left), the database's `now`, and its direct charge if any."""

    session: Session
    permission: Permission
    asset: Asset
    now: datetime
    direct_charge: DirectCharge | None = None
    replayed: bool = False  # the answer an Idempotency-Key recorded, given again (its direct charge as it is now)


class SessionService:
    def __init__(self, db: Database, sources: FundingSources) -> None:
        self.db = db
        self.sources = sources

    async def open(self, token: str, user_wallet_address: str, vendor_id: UUID,
                   once: IdempotentCall | None = None) -> OpenedSession:
        """Open a session on the token's permission (401 for a token that opens none); the wallet must be the
        permission's, as its funding source spells it. Under an Idempotency-Key, scoped to the token, the same call
        claims the key (or answers as it first did: `replayed`)."""
        token_hash = secret_hash(token)
        claimed = None
        if once is not None:
            claimed = derive_claim(once.route, Caller(f"token:{token_hash.hex()}", token), once.key, once.request)
        opened = await self._open(token_hash, user_wallet_address, vendor_id, claimed)
        if isinstance(opened, WalletDiffers):
            wallet = self.sources.source(opened.funding_source).validate_address(user_wallet_address)
            if wallet == opened.wallet:  # the same wallet spelt otherwise: open with the stored spelling
                opened = await self._open(token_hash, wallet, vendor_id, claimed)
        if isinstance(opened, WalletDiffers):
            raise Forbidden("the permission token belongs to another wallet", code="wallet_mismatch")
        return opened

    async def _open(self, token_hash: bytes, wallet: str, vendor_id: UUID,
                    claimed: IdempotencyClaim | None) -> OpenedSession | WalletDiffers:
        async with self.db.one_statement() as work:
            opened = await open_session(work.conn, token_hash, wallet, vendor_id, claimed)
            if isinstance(opened, OpenedSession) and not opened.replayed:
                work.changed(permissions=[opened.session.permission_id], sessions=[opened.session.id])
        return opened

    async def end(self, session_code: str, once: IdempotentCall | None = None) -> SessionState:
        """End a session with its final charge; ending it again answers the same and charges nothing. Under an
        Idempotency-Key (anonymous: the long key is the secret) the same call claims it (or answers as it first
        did: `replayed`)."""
        claimed = None if once is None else derive_claim(once.route, Caller(ANONYMOUS), once.key, once.request)
        async with self.db.one_statement() as work:
            ended = await end_session(work.conn, session_code, claimed)
            if not ended.replayed:
                work.changed(permissions=[ended.permission.id], sessions=[ended.session.id])
        state = await self._with_direct_charge(ended.session, ended.permission, ended.session.ended_at or ended.now)
        return replace(state, replayed=ended.replayed)

    async def show(self, session_code: str, token: str, *, with_direct_charge: bool = True) -> SessionState:
        """The session as its permission's token holder sees it: 401 for a token that opens no permission, 404 for
        an unknown code, 403 for another permission's session."""
        async with self.db.connection() as conn:
            read = await read_session(conn, session_code, token)
        if read.holder is None:
            raise Unauthorized("the permission token is not valid", code="invalid_token")
        return await self._state(read, read.holder, with_direct_charge)

    async def state(self, session_code: str, permission_id: UUID, *, with_direct_charge: bool = True) -> SessionState:
        """The session for a caller already known to hold `permission_id`'s token (a live stream's next read)."""
        async with self.db.connection() as conn:
            read = await read_session(conn, session_code, None)
        return await self._state(read, permission_id, with_direct_charge)

    async def _state(self, read: SessionRead, permission_id: UUID, with_direct_charge: bool) -> SessionState:
        if read.session is None or read.permission is None:
            raise NotFound("no session with this session_code", code="session_not_found")
        if read.session.permission_id != permission_id:
            raise Forbidden("this session belongs to another permission", code="forbidden")
        if not with_direct_charge:
            return SessionState(read.session, read.permission, self.sources.assets[read.permission.asset], read.now)
        return await self._with_direct_charge(read.session, read.permission, read.now)

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
