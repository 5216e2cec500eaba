"""Spending permissions as the gateway asks for them: create, read, verify, find a wallet's, and what a wallet holds.

Each method holds a pooled connection only for its database work, never across a call to a node or processor;
writes go through `Database.transaction()`, so the cache and live streams learn of them after the commit.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import TypeAdapter

from billing.cache import PermissionCache
from billing.card import CARD_DETAILS, CardDetails
from billing.checkout import PaymentRequest, payment_request
from billing.eip712 import (
    MAX_UINT64,
    MAX_UINT256,
    SpendAuthorization,
    check_authorization,
    parse_uint,
    record_authorization,
)
from billing.permissions import (
    PAYMENTS_OF,
    PERMISSION_COLUMNS,
    NewPermission,
    PaymentRow,
    PaymentStatus,
    Permission,
    TokenHolder,
    apply_payments,
    holder_of_token,
    insert_permission,
    latest_permission_for_wallet,
    payments_claimed_elsewhere,
)
from billing.pricing import PRICING_OF, Pricing, PricingService, insert_pricing
from billing.refunds import PAYOUT_OF_PERMISSION, Payout
from billing.reminders import OPEN_SESSIONS_OF, REMINDERS_OF, OpenSession, ReminderPolicy, SentReminder, renewal_due
from billing.secrets import new_permission_token, secret_hash
from billing.sources import FundingSources
from billing.unit_of_work import Database
from billing.webhooks import permission_secret, validate_notify_url
from kernel.assets import Asset
from kernel.errors import Conflict, Forbidden, InvalidRequest, NotFound, ServiceUnavailable, Unauthorized
from kernel.funding import FundingRequest, PaymentTarget, WalletBalance
from kernel.money import parse_amount

DEFAULT_AUTHORIZATION_SECONDS = 3600  # how long typed data made without an `expiry` may be presented
INDEX_RETRY_AFTER_SECONDS = 3600  # a node without an address index will not grow one soon


@dataclass(frozen=True, slots=True)
class SignedTerms:
    """A wallet's signature over a permission's terms (Ethereum: EIP-712), as the create request carries it."""

    chain_id: int
    nonce: object
    expiry: object
    signature: str


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A request for a new permission, as received (amounts not parsed yet)."""

    funding_source: str
    asset: str
    user_wallet_address: str
    requested_amount: object
    rate_per_hour: object
    duration_days: int | None = None
    notify_url: str | None = None
    funding_extra: dict[str, str] = field(default_factory=dict)  # source-specific options (card success_url)
    signed: SignedTerms | None = None  # required by sources whose wallets sign their terms
    pricing_currency: str | None = None  # the amounts are in this fiat currency, converted at a quote
    quote_id: str | None = None  # the quote to convert at (required where the wallet signs the amounts)


@dataclass(frozen=True, slots=True)
class CreatedPermission:
    state: PermissionState
    permission_token: str  # shown once
    notify_secret: str | None = None  # shown once, when the permission has a notify_url


@dataclass(frozen=True, slots=True)
class PermissionState:
    """Everything an answer about one permission shows, read in one go (and cached as a whole)."""

    permission: Permission
    payments: list[PaymentRow]
    now: datetime
    reminders: list[SentReminder] = field(default_factory=list)
    open_sessions: list[OpenSession] = field(default_factory=list)
    card: CardDetails | None = None  # card permissions only
    renewal_due: bool = False  # computed on every read from the permission, `now` and the reminder policy
    confirmations_required: int = 1
    payment_request: PaymentRequest | None = None  # computed on every read: what a payer should send now
    payout: Payout | None = None  # the refund of its unused balance, once asked for
    pricing: Pricing | None = None  # fiat-priced permissions: the terms in the currency and the quote

    @property
    def asset(self) -> Asset:
        """The asset as the permission recorded it (its decimals are stored with it)."""
        p = self.permission
        return Asset(p.asset, p.asset_decimals, p.funding_source)


@dataclass(frozen=True, slots=True)
class BalanceReport:
    """What a wallet holds as its node sees it, and the streaming that buys at a rate."""

    wallet_address: str
    asset: Asset
    balance: WalletBalance
    rate_per_hour: int | None


@dataclass(frozen=True, slots=True)
class PermissionPolicy:
    """The rules a new permission is checked against (from settings)."""

    default_duration_days: int
    max_duration_days: int
    max_amount_units: dict[str, int]
    webhook_signing_key: str | None = None
    allow_private_webhook_targets: bool = False  # development only: notify_url may name a private host
    payment_window_hours: int = 24
    reminder_policy: ReminderPolicy = field(default_factory=ReminderPolicy)


@dataclass(frozen=True, slots=True)
class Terms:
    """A permission's amounts in minor units of its asset, and its fiat terms when it was priced in a currency."""

    amount: int
    rate: int
    pricing: Pricing | None = None


_CACHED_STATE = TypeAdapter(PermissionState)

# A permission's whole state in one statement — its row, payments, reminders, open sessions, (card) details, refund
# and fiat pricing, each selected as its own module reads it ($1: the permission) — and the permission a token hash
# opens ($2, or NULL): one round trip for a token holder's read. The permission comes as columns (asyncpg decodes
# them natively); collections come as JSON, read into their dataclasses below: `json`, not `jsonb`, which PostgreSQL
# would build in binary and then print (10-30 % more of its time on this statement).
PERMISSION_STATE = f"""
SELECT (SELECT id FROM permissions WHERE token_hash = $2) AS holder, now() AS now,
       {", ".join(f"p.{column}" for column in PERMISSION_COLUMNS.split(", "))},
       (SELECT coalesce(json_agg(x), '[]') FROM ({PAYMENTS_OF}) x) AS payments,
       (SELECT coalesce(json_agg(x), '[]') FROM ({REMINDERS_OF}) x) AS reminders,
       (SELECT coalesce(json_agg(x), '[]') FROM ({OPEN_SESSIONS_OF}) x) AS open_sessions,
       CASE WHEN p.funding_source = 'card' THEN (SELECT to_json(x) FROM ({CARD_DETAILS}) x) END AS card,
       (SELECT to_json(x) FROM ({PAYOUT_OF_PERMISSION}) x) AS payout,
       (SELECT to_json(x) FROM ({PRICING_OF}) x) AS pricing
  FROM (SELECT 1) AS one LEFT JOIN permissions p ON p.id = $1
"""
_PAYMENTS = TypeAdapter(list[PaymentRow])
_REMINDERS = TypeAdapter(list[SentReminder])
_OPEN_SESSIONS = TypeAdapter(list[OpenSession])
_CARD = TypeAdapter(CardDetails)
_PAYOUT = TypeAdapter(Payout)
_PRICING = TypeAdapter(Pricing)


class PermissionService:
    def __init__(self, db: Database, sources: FundingSources, cache: PermissionCache, policy: PermissionPolicy,
                 pricing: PricingService) -> None:
        self.db = db
        self.sources = sources
        self.cache = cache
        self.policy = policy
        self.pricing = pricing

    # --- create ------------------------------------------------------------------------------------------------

    async def create(self, request: PermissionRequest) -> CreatedPermission:
        """Check the terms (and a wallet's signature over them, where the source asks for one), prepare where the
        money goes, and store the permission with its token's hash."""
        source = self.sources.source(request.funding_source)
        asset = self.sources.asset_for(request.funding_source, request.asset)
        wallet = source.validate_address(request.user_wallet_address)
        duration = self._duration(request.duration_days)
        notify_url = self._notify_url(request.notify_url)
        if request.funding_source in self.sources.authorizers and request.signed is None:
            raise InvalidRequest("this funding source needs the wallet's signed authorization",
                                 code="invalid_signature")
        terms = await self.terms(request.funding_source, asset, request.requested_amount, request.rate_per_hour,
                                 request.pricing_currency, request.quote_id)
        amount, rate = terms.amount, terms.rate
        authorization = self._signed_authorization(request, asset, terms)
        permission_id = uuid4()
        instructions = await source.prepare_funding(
            FundingRequest(reference=str(permission_id), asset=asset.code, amount_units=amount, payer=wallet,
                           extra=request.funding_extra)
        )
        token = new_permission_token()
        async with self.db.transaction() as work:
            await insert_permission(work.conn, NewPermission(
                id=permission_id, funding_source=source.name, asset=asset.code, asset_decimals=asset.decimals,
                user_wallet_address=wallet, token_hash=secret_hash(token), approved_amount=amount,
                rate_per_hour=rate, duration_days=duration, payment_address=instructions.payment_address,
                payment_locator=instructions.locator, checkout_url=instructions.checkout_url,
                notify_url=notify_url, payment_window_hours=self.policy.payment_window_hours,
            ))
            if authorization is not None:
                assert request.signed is not None
                await record_authorization(work.conn, permission_id, authorization, request.signed.signature)
            if terms.pricing is not None:
                await insert_pricing(work.conn, permission_id, terms.pricing)
        signing_key = self.policy.webhook_signing_key
        notify_secret = (permission_secret(signing_key, permission_id)
                         if notify_url is not None and signing_key is not None else None)
        return CreatedPermission(await self.state(permission_id), token, notify_secret)

    def _duration(self, raw: int | None) -> int:
        if raw is None:
            return self.policy.default_duration_days
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= self.policy.max_duration_days:
            raise InvalidRequest(f"duration_days must be a whole number from 1 to {self.policy.max_duration_days}",
                                 code="invalid_duration")
        return raw

    def _notify_url(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        if self.policy.webhook_signing_key is None:
            raise InvalidRequest("this gateway sends no webhooks (WEBHOOK_SIGNING_KEY is not set): omit notify_url",
                                 code="webhooks_not_configured")
        return validate_notify_url(raw, allow_private=self.policy.allow_private_webhook_targets)

    async def terms(self, funding_source: str, asset: Asset, requested_amount: object, rate_per_hour: object,
                    pricing_currency: str | None, quote_id: str | None) -> Terms:
        """The amounts in the asset: as given, or converted from `pricing_currency` at a quote (the one named, or a
        new one where the wallet signs no amounts)."""
        maximum = self.policy.max_amount_units.get(asset.code)
        if pricing_currency is None:
            if quote_id is not None:
                raise InvalidRequest("quote_id goes with pricing_currency", code="invalid_request")
            return Terms(parse_amount(requested_amount, asset, "requested_amount", maximum),
                         parse_amount(rate_per_hour, asset, "rate_per_hour", maximum))
        priced = await self.pricing.price(asset, pricing_currency, requested_amount, rate_per_hour, quote_id, maximum,
                                          quote_required=funding_source in self.sources.authorizers)
        return Terms(priced.amount_units, priced.rate_units, priced.pricing)

    # --- signed terms (Ethereum) ---------------------------------------------------------------------------------

    async def typed_data(self, funding_source: str, *, wallet: str, asset_code: str, requested_amount: object,
                         rate_per_hour: object, duration_days: int | None, expiry: object | None,
                         nonce: object | None, pricing_currency: str | None = None,
                         quote_id: str | None = None) -> dict[str, object]:
        """The typed data a wallet signs for these terms (in the asset, or converted at the quote named); a fresh
        random nonce and an expiry an hour from now unless given."""
        self.sources.ability(self.sources.authorizers, funding_source)
        asset = self.sources.asset_for(funding_source, asset_code)
        terms = await self.terms(funding_source, asset, requested_amount, rate_per_hour, pricing_currency, quote_id)
        return self._authorization(
            funding_source, wallet=wallet, asset=asset, terms=terms, duration_days=duration_days,
            expiry=expiry if expiry is not None else int(time.time()) + DEFAULT_AUTHORIZATION_SECONDS,
            nonce=nonce if nonce is not None else secrets.randbits(128),
        ).typed_data()

    def _authorization(self, funding_source: str, *, wallet: str, asset: Asset, terms: Terms,
                       duration_days: int | None, expiry: object, nonce: object) -> SpendAuthorization:
        """The terms as the wallet signs them, normalised exactly as the permission will store them."""
        signer = self.sources.ability(self.sources.authorizers, funding_source)
        return SpendAuthorization(
            chain_id=signer.chain_id,
            wallet=self.sources.source(funding_source).validate_address(wallet),
            spender=signer.service_address,
            asset=signer.asset_contract(asset.code),
            allowance=terms.amount,
            rate_per_hour=terms.rate,
            duration_days=duration_days if duration_days is not None else self.policy.default_duration_days,
            expiry=parse_uint(expiry, "expiry", MAX_UINT64),
            nonce=parse_uint(nonce, "nonce", MAX_UINT256),
        )

    def _signed_authorization(self, request: PermissionRequest, asset: Asset,
                              terms: Terms) -> SpendAuthorization | None:
        """Refuse a create whose signature does not authorize exactly these terms (sources that sign only)."""
        if request.funding_source not in self.sources.authorizers:
            return None
        assert request.signed is not None  # create refused it before
        authorization = self._authorization(
            request.funding_source, wallet=request.user_wallet_address, asset=asset, terms=terms,
            duration_days=request.duration_days, expiry=request.signed.expiry, nonce=request.signed.nonce,
        )
        check_authorization(authorization, request.signed.signature, signed_chain_id=request.signed.chain_id,
                            now=int(time.time()))
        return authorization

    # --- read --------------------------------------------------------------------------------------------------

    async def holder_of_token(self, token: str) -> TokenHolder | None:
        async with self.db.connection() as conn:
            return await holder_of_token(conn, secret_hash(token))

    async def state(self, permission_id: UUID, funding_source: str | None = None) -> PermissionState:
        """The permission's state (from the cache when fresh); 404 when it is not `funding_source`'s."""
        state = await self._cached(permission_id)
        if state is None:
            _, state = await self._read(permission_id, None)
            if state is None:
                raise NotFound("permission not found", code="permission_not_found")
            await self.cache.put(permission_id, _CACHED_STATE.dump_json(state))
        return self._shown(state, funding_source)

    async def state_for_token(self, permission_id: UUID, token: str, funding_source: str) -> PermissionState:
        """The permission's state for the holder of its token, read with the token's check in one round trip: 401
        for a token that opens no permission, 403 for another permission's token, 404 when it is not
        `funding_source`'s. (No cache: the token needs the database anyway.)"""
        holder, state = await self._read(permission_id, token)
        if holder is None:
            raise Unauthorized("the permission token is not valid", code="invalid_token")
        if holder != permission_id or state is None:
            raise Forbidden("the permission token does not grant access to this permission", code="forbidden")
        return self._shown(state, funding_source)

    def _shown(self, state: PermissionState, funding_source: str | None) -> PermissionState:
        """The state with what is computed on every read; 404 when it is not `funding_source`'s."""
        if funding_source is not None and state.permission.funding_source != funding_source:
            raise NotFound(f"this permission is funded by {state.permission.funding_source}, not {funding_source}",
                           code="permission_not_found")
        return replace(state, renewal_due=renewal_due(state.permission, state.now, self.policy.reminder_policy),
                       payment_request=payment_request(state.permission, state.payments, state.now, self.sources))

    async def _cached(self, permission_id: UUID) -> PermissionState | None:
        raw = await self.cache.get(permission_id)
        if raw is None:
            return None
        return replace(_CACHED_STATE.validate_json(raw), now=datetime.now(UTC))

    async def _read(self, permission_id: UUID, token: str | None) -> tuple[UUID | None, PermissionState | None]:
        """Which permission `token` opens (None for no token or an invalid one), and the permission's whole state
        (None when it does not exist), in one statement."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(PERMISSION_STATE, permission_id,
                                      secret_hash(token) if token is not None else None)
        if row["id"] is None:
            return row["holder"], None
        permission = Permission.from_record(row)
        return row["holder"], PermissionState(
            permission, _PAYMENTS.validate_python(row["payments"]), row["now"],
            _REMINDERS.validate_python(row["reminders"]), _OPEN_SESSIONS.validate_python(row["open_sessions"]),
            _CARD.validate_python(row["card"]) if row["card"] is not None else None,
            confirmations_required=self.sources.confirmations_required(permission.funding_source),
            payout=_PAYOUT.validate_python(row["payout"]) if row["payout"] is not None else None,
            pricing=_PRICING.validate_python(row["pricing"]) if row["pricing"] is not None else None,
        )

    async def wallet_permission_id(self, funding_source: str, address: str) -> UUID:
        """The wallet's permission that matters most (the operator's view): its newest active one, else newest."""
        wallet = self.sources.source(funding_source).validate_address(address)
        async with self.db.connection() as conn:
            permission = await latest_permission_for_wallet(conn, funding_source, wallet)
        if permission is None:
            raise NotFound("no permission for this wallet", code="permission_not_found")
        return permission.id

    async def state_for_wallet(self, permission_id: UUID, funding_source: str, address: str) -> PermissionState:
        """The permission, if it belongs to this wallet of this source (a token holder's view)."""
        state = await self.state(permission_id)
        wallet = self.sources.source(funding_source).validate_address(address)
        if state.permission.user_wallet_address != wallet or state.permission.funding_source != funding_source:
            raise NotFound("no permission for this wallet under this token", code="permission_not_found")
        return state

    # --- verify ------------------------------------------------------------------------------------------------

    async def verify(self, permission_id: UUID, funding_source: str,
                     offered_txids: Sequence[str] = ()) -> PermissionState:
        """Ask the funding source what reached the permission and credit what is confirmed.

        `offered_txids` are transactions the user says paid it (Ethereum verify takes tx hashes); one that already
        funds another permission is refused (409): one payment funds one permission."""
        state = await self.state(permission_id, funding_source)
        permission = state.permission
        if permission.payment_address is None and permission.payment_locator is None:
            return state
        source = self.sources.source(funding_source)
        hints: tuple[str, ...] = ()
        if funding_source in self.sources.authorizers:
            signer = self.sources.authorizers[funding_source]
            offered = list(dict.fromkeys(signer.normalise_transaction_id(txid) for txid in offered_txids))
            async with self.db.connection() as conn:
                claimed = await payments_claimed_elsewhere(conn, funding_source, offered, permission_id)
            if claimed:
                raise Conflict(f"transaction {', '.join(claimed)} already funds another permission",
                               code="payment_already_used")
            unsettled = [p.txid for p in state.payments if p.status in PaymentStatus.unsettled()]
            hints = tuple(dict.fromkeys([*offered, *unsettled]))
        target = PaymentTarget(key=str(permission.id), asset=permission.asset,
                               payment_address=permission.payment_address, locator=permission.payment_locator or "",
                               payer=permission.user_wallet_address, hints=hints)
        seen = (await source.find_payments([target])).get(target.key, [])
        async with self.db.transaction() as work:
            await apply_payments(work.conn, permission.id, seen, min_confirmations=source.min_confirmations)
            work.changed(permissions=[permission.id])
        return await self.state(permission_id)

    # --- wallets -----------------------------------------------------------------------------------------------

    async def wallet_balance(self, funding_source: str, address: str, asset_code: str,
                             raw_rate: str | None) -> BalanceReport:
        """What the node sees in a wallet, and (with a rate) the hours it could buy."""
        reader = self.sources.ability(self.sources.balances, funding_source)
        asset = self.sources.asset_for(funding_source, asset_code)
        wallet = self.sources.source(funding_source).validate_address(address)
        rate = parse_amount(raw_rate, asset, "rate_per_hour") if raw_rate is not None else None
        balance = await reader.wallet_balance(wallet, asset.code)
        if balance.units is None:
            raise ServiceUnavailable(f"the {funding_source} node's address index is disabled, so balances cannot "
                                     "be read", code="address_index_disabled", retry_after=INDEX_RETRY_AFTER_SECONDS)
        return BalanceReport(wallet, asset, balance, rate)
