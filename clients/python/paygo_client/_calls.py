"""Every gateway operation, written once: each function here takes a method's arguments and returns the `Call`
to make (method, path, credential, query, body, how to read the answer). `PayGo` and `AsyncPayGo` turn each into a
method that sends it (`paygo_client.client`, `paygo_client.async_client`), so both clients have the same methods
with the same signatures and documentation.

`@operations("METHOD /path")` names the OpenAPI operations a function calls; a test checks that every operation of
the gateway's document has a method (or is on a short, explicit list of exclusions).

Amounts are `Decimal`, `int` or a decimal `str`, never `float`; they are sent as exact decimal strings. Mutating
calls carry an `Idempotency-Key` (given, or generated once per call and reused by every retry).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from paygo_client._http import Auth, new_idempotency_key
from paygo_client.errors import UnexpectedResponse
from paygo_client.models import (
    AuditTrail,
    ChargesSummary,
    Checkout,
    CreatedPermission,
    CreatedVendor,
    Delivery,
    DeliveryPage,
    EndedSession,
    EthereumBalance,
    FundingSource,
    Health,
    OpenedSession,
    OperatorOverview,
    OperatorTimeseries,
    Payout,
    Payouts,
    Permission,
    Quote,
    Refund,
    RevokedVendorKeys,
    RotatedVendorKey,
    Session,
    Status,
    VendorAccount,
    VendorKeys,
    VendorSessionDetail,
    VendorSessionPage,
    Wallet,
    WebhookSetting,
    ZcashBalance,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

Amount = Decimal | int | str
Moment = datetime | date | str
OPERATIONS_ATTRIBUTE = "__paygo_operations__"
# Operations no client method calls, and why.
EXCLUDED_OPERATIONS: dict[str, str] = {
    "POST /api/v1/webhooks/stripe": "Stripe calls it, with Stripe's signature; no PayGo client does",
    "GET /api/v1/docs": "an HTML page for people; openapi() returns the document it renders",
}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to make and how to read its answer. `answers`: error statuses that are an answer of this
    operation (health's 503 report) rather than an error to raise or retry."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    auth: Auth = Auth.NONE
    token: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    idempotency_key: str | None = None
    accept: str | None = None
    answers: frozenset[int] = frozenset()


def operations(*names: str) -> Callable[[F], F]:
    """Record which OpenAPI operations (`"GET /api/v1/..."`, path as in the document) a function calls."""

    def mark(function: F) -> F:
        setattr(function, OPERATIONS_ATTRIBUTE, names)
        return function

    return mark


def operations_of(function: object) -> tuple[str, ...]:
    names: tuple[str, ...] = getattr(function, OPERATIONS_ATTRIBUTE, ())
    return names


def method_signature(builder: Callable[..., Any]) -> inspect.Signature:
    """The signature of the client method made from `builder`: `self` first, and the call's result as its return
    (what `help()` and editors show)."""
    signature = inspect.signature(builder)
    returned = signature.return_annotation
    if isinstance(returned, str) and returned.startswith("Call[") and returned.endswith("]"):
        returned = returned[len("Call["):-1]
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[this, *signature.parameters.values()], return_annotation=returned)


def _each_source(method: str, template: str) -> tuple[str, ...]:
    return tuple(f"{method} {template.format(source=source)}" for source in ("zcash", "ethereum", "card"))


# --- encoding ------------------------------------------------------------------------------------------------------

def _segment(value: str) -> str:
    """A path segment, escaped (an email address or a code cannot change the path)."""
    return quote(str(value), safe="")


def amount_text(value: Amount, name: str) -> str:
    """An amount as the exact decimal string sent to the gateway; a float is refused (it cannot hold money)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"{name} must be a Decimal, an int or a decimal string, not {type(value).__name__}")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _moment(value: Moment) -> str:
    """A date or date-time for a query, date-times in UTC written with `Z` (a naive one is taken as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    return value.isoformat() if isinstance(value, date) else value


def _query(**values: str | int | None) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _body(**fields: Any) -> bytes:
    """A JSON body of the fields that are set; encoded once, so every retry sends the very same bytes (the gateway
    matches a repeated Idempotency-Key with a hash of the body)."""
    return json.dumps({name: value for name, value in fields.items() if value is not None},
                      separators=(",", ":")).encode()


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise UnexpectedResponse(f"the gateway's answer is not a {model.__name__}: {exc}") from exc

    return parse


def _json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def _text(response: httpx.Response) -> str:
    return response.text


def _post(path: str, parse: Callable[[httpx.Response], T], *, auth: Auth = Auth.NONE, token: str | None = None,
          body: bytes | None = None, idempotency_key: str | None = None, method: str = "POST") -> Call[T]:
    return Call(method, path, parse, auth=auth, token=token, body=body,
                idempotency_key=idempotency_key or new_idempotency_key())


# --- permissions ---------------------------------------------------------------------------------------------------

@operations("POST /api/v1/zcash/permissions")
def create_zcash_permission(user_wallet_address: str, requested_amount: Amount, rate_per_hour: Amount, *,
                            duration_days: int | None = None, notify_url: str | None = None,
                            idempotency_key: str | None = None) -> Call[CreatedPermission]:
    """Ask for a ZEC spending permission; pay `amount_to_pay` to its `payment_address`. The answer carries the
    `permission_token` (shown only now) and, with `notify_url`, the `notify_secret` that signs its reminders."""
    return _post("/api/v1/zcash/permissions", _model(CreatedPermission), idempotency_key=idempotency_key, body=_body(
        user_wallet_address=user_wallet_address, requested_amount=amount_text(requested_amount, "requested_amount"),
        rate_per_hour=amount_text(rate_per_hour, "rate_per_hour"), duration_days=duration_days,
        notify_url=notify_url))


@operations("POST /api/v1/card/permissions")
def create_card_permission(email: str, requested_amount: Amount, rate_per_hour: Amount, *,
                           duration_days: int | None = None, notify_url: str | None = None,
                           success_url: str | None = None, cancel_url: str | None = None,
                           idempotency_key: str | None = None) -> Call[CreatedPermission]:
    """Ask for a card-funded permission in USD; send the buyer to its `checkout_url` (Stripe Checkout)."""
    return _post("/api/v1/card/permissions", _model(CreatedPermission), idempotency_key=idempotency_key, body=_body(
        user_wallet_address=email, requested_amount=amount_text(requested_amount, "requested_amount"),
        rate_per_hour=amount_text(rate_per_hour, "rate_per_hour"), duration_days=duration_days,
        notify_url=notify_url, success_url=success_url, cancel_url=cancel_url))


@operations("GET /api/v1/ethereum/permissions/typed-data")
def ethereum_typed_data(user_wallet_address: str, requested_amount: Amount, rate_per_hour: Amount, *,
                        asset: str = "ETH", duration_days: int | None = None, expiry: int | None = None,
                        nonce: int | None = None) -> Call[dict[str, Any]]:
    """The EIP-712 typed data a wallet signs (`eth_signTypedData_v4`) to authorize these terms; without `nonce`
    and `expiry` the gateway picks a random nonce and an expiry an hour away."""
    return Call("GET", "/api/v1/ethereum/permissions/typed-data", _json, params=_query(
        user_wallet_address=user_wallet_address, requested_amount=amount_text(requested_amount, "requested_amount"),
        rate_per_hour=amount_text(rate_per_hour, "rate_per_hour"), asset=asset, duration_days=duration_days,
        expiry=expiry, nonce=nonce))


@operations("POST /api/v1/ethereum/permissions")
def create_signed_ethereum_permission(user_wallet_address: str, requested_amount: Amount, rate_per_hour: Amount, *,
                                      chain_id: int, nonce: int | str, expiry: int | str, signature: str,
                                      asset: str = "ETH", duration_days: int | None = None,
                                      notify_url: str | None = None,
                                      idempotency_key: str | None = None) -> Call[CreatedPermission]:
    """Create an Ethereum permission from terms a wallet signed elsewhere (a browser wallet): the same terms as
    `ethereum_typed_data`, its domain's `chainId`, its message's `nonce` and `expiry`, and the signature."""
    return _post("/api/v1/ethereum/permissions", _model(CreatedPermission), idempotency_key=idempotency_key,
                 body=_body(user_wallet_address=user_wallet_address,
                            requested_amount=amount_text(requested_amount, "requested_amount"),
                            rate_per_hour=amount_text(rate_per_hour, "rate_per_hour"), asset=asset,
                            duration_days=duration_days, notify_url=notify_url, chain_id=chain_id, nonce=str(nonce),
                            expiry=str(expiry), signature=signature))


def signed_ethereum_permission(account: LocalAccount, typed_data: Mapping[str, Any], requested_amount: Amount,
                               rate_per_hour: Amount, *, asset: str, duration_days: int | None,
                               notify_url: str | None, idempotency_key: str | None) -> Call[CreatedPermission]:
    """Sign the gateway's typed data with `account` (eth-account) and make the create call for it."""
    signed = account.sign_typed_data(full_message=dict(typed_data))
    message = typed_data["message"]
    return create_signed_ethereum_permission(
        account.address, requested_amount, rate_per_hour, chain_id=int(typed_data["domain"]["chainId"]),
        nonce=message["nonce"], expiry=message["expiry"], signature=signed.signature.to_0x_hex(), asset=asset,
        duration_days=duration_days, notify_url=notify_url, idempotency_key=idempotency_key)


@operations(*_each_source("GET", "/api/v1/{source}/permissions/{{id}}"))
def get_permission(permission_id: str, *, source: FundingSource = "zcash",
                   token: str | None = None) -> Call[Permission]:
    """A permission (its token, or the operator key)."""
    return Call("GET", f"/api/v1/{source}/permissions/{_segment(permission_id)}", _model(Permission),
                auth=Auth.HOLDER, token=token)


@operations(*_each_source("POST", "/api/v1/{source}/permissions/{{id}}/verify"))
def verify_permission(permission_id: str, *, source: FundingSource = "zcash", tx_hashes: Sequence[str] = (),
                      token: str | None = None, idempotency_key: str | None = None) -> Call[Permission]:
    """Look for payments to the permission now and credit the confirmed ones; answers its state (still
    `pending_payment` is not an error). Ethereum: name the paying transactions in `tx_hashes`."""
    body = _body(tx_hashes=list(tx_hashes)) if tx_hashes else None
    return _post(f"/api/v1/{source}/permissions/{_segment(permission_id)}/verify", _model(Permission),
                 auth=Auth.HOLDER, token=token, body=body, idempotency_key=idempotency_key)


@operations(*_each_source("GET", "/api/v1/{source}/permissions/wallet/{{address}}"))
def get_wallet_permission(address: str, *, source: FundingSource = "zcash",
                          token: str | None = None) -> Call[Permission]:
    """The wallet's permission: with a token, that permission if it is the wallet's; with the operator key, the
    wallet's newest active one (else its newest). Card: the address is the buyer's email."""
    return Call("GET", f"/api/v1/{source}/permissions/wallet/{_segment(address)}", _model(Permission),
                auth=Auth.HOLDER, token=token)


@operations("POST /api/v1/card/permissions/{id}/refund")
def refund_card_permission(permission_id: str, *, token: str | None = None,
                           idempotency_key: str | None = None) -> Call[Refund]:
    """Refund a card permission's unused balance to the card and close it (its token, or the operator key)."""
    return _post(f"/api/v1/card/permissions/{_segment(permission_id)}/refund", _model(Refund), auth=Auth.HOLDER,
                 token=token, idempotency_key=idempotency_key)


@operations("POST /api/v1/zcash/permissions/{id}/refund", "POST /api/v1/ethereum/permissions/{id}/refund")
def refund_permission(permission_id: str, *, source: Literal["zcash", "ethereum"] = "zcash",
                      refund_address: str | None = None, token: str | None = None,
                      idempotency_key: str | None = None) -> Call[Permission]:
    """Close a chain permission and refund its unused balance (its token, or the operator key): Zcash sends it to
    `refund_address` (default: the wallet) minus the network fee; Ethereum orders a payout the operator pays to the
    signing wallet. The answer's `refund` says how far it got."""
    body = _body(refund_address=refund_address) if refund_address is not None else None
    return _post(f"/api/v1/{source}/permissions/{_segment(permission_id)}/refund", _model(Permission),
                 auth=Auth.HOLDER, token=token, body=body, idempotency_key=idempotency_key)


@operations("POST /api/v1/quotes")
def create_quote(asset: str, pricing_currency: str = "USD", *, idempotency_key: str | None = None) -> Call[Quote]:
    """Lock a rate of `asset` in `pricing_currency` for the gateway's window (for a USD-priced permission)."""
    return _post("/api/v1/quotes", _model(Quote), idempotency_key=idempotency_key,
                 body=_body(asset=asset, pricing_currency=pricing_currency))


@operations("GET /api/v1/zcash/balance/{address}")
def zcash_balance(address: str, *, rate_per_hour: Amount | None = None) -> Call[ZcashBalance]:
    """What the Zcash node sees of a wallet, and the hours it buys at `rate_per_hour`."""
    rate = amount_text(rate_per_hour, "rate_per_hour") if rate_per_hour is not None else None
    return Call("GET", f"/api/v1/zcash/balance/{_segment(address)}", _model(ZcashBalance),
                params=_query(rate_per_hour=rate))


@operations("GET /api/v1/ethereum/balance/{address}")
def ethereum_balance(address: str, *, asset: str = "ETH",
                     rate_per_hour: Amount | None = None) -> Call[EthereumBalance]:
    """A wallet's ETH or token balance as the node reports it, and the hours it buys at `rate_per_hour`."""
    rate = amount_text(rate_per_hour, "rate_per_hour") if rate_per_hour is not None else None
    return Call("GET", f"/api/v1/ethereum/balance/{_segment(address)}", _model(EthereumBalance),
                params=_query(asset=asset, rate_per_hour=rate))


@operations("GET /api/v1/checkout/{permission_id}")
def get_checkout(permission_id: str) -> Call[Checkout]:
    """What paying the permission needs (amount, address, payment URI) and how far its payment got (`phase`,
    payments and their confirmations); public, no credential: a payer's app can show it."""
    return Call("GET", f"/api/v1/checkout/{_segment(permission_id)}", _model(Checkout))


@operations("GET /api/v1/wallet")
def get_wallet(*, token: str | None = None) -> Call[Wallet]:
    """The token's permission with its open sessions and its latest balance changes (the permission's token)."""
    return Call("GET", "/api/v1/wallet", _model(Wallet), auth=Auth.PERMISSION_TOKEN, token=token)


# --- sessions ------------------------------------------------------------------------------------------------------

@operations("POST /api/v1/sessions")
def open_session(user_wallet_address: str, vendor_id: str, *, token: str | None = None,
                 idempotency_key: str | None = None) -> Call[OpenedSession]:
    """Open a streaming session paid by the token's permission. Refusals: `PermissionNotFunded`,
    `PermissionExpired`, `PermissionExhausted`, `WalletMismatch`, `VendorNotFound`."""
    return _post("/api/v1/sessions", _model(OpenedSession), auth=Auth.PERMISSION_TOKEN, token=token,
                 idempotency_key=idempotency_key,
                 body=_body(user_wallet_address=user_wallet_address, vendor_id=vendor_id))


@operations("POST /api/v1/sessions/end")
def end_session(session_code: str, *, idempotency_key: str | None = None) -> Call[EndedSession]:
    """End a session with its final charge; ending it again answers the same and charges nothing more."""
    return _post("/api/v1/sessions/end", _model(EndedSession), idempotency_key=idempotency_key,
                 body=_body(session_code=session_code))


@operations("GET /api/v1/sessions/{session_code}")
def get_session(session_code: str, *, token: str | None = None) -> Call[Session]:
    """A session's charges so far and what is left (the permission's token)."""
    return Call("GET", f"/api/v1/sessions/{_segment(session_code)}", _model(Session), auth=Auth.PERMISSION_TOKEN,
                token=token)


def session_events(session_code: str, *, token: str | None) -> Call[Session]:
    """The live-balance stream (read by `live`); `parse` reads one event's data."""
    return Call("GET", f"/api/v1/sessions/{_segment(session_code)}/events", _model(Session),
                auth=Auth.PERMISSION_TOKEN, token=token, accept="text/event-stream")


# --- vendors -------------------------------------------------------------------------------------------------------

def _session_filters(status: str | Sequence[str] | None, started_from: Moment | None, started_to: Moment | None,
                     wallet: str | None) -> dict[str, str]:
    statuses = status if status is None or isinstance(status, str) else ",".join(status)
    return _query(**{"status": statuses, "from": _moment(started_from) if started_from is not None else None,
                     "to": _moment(started_to) if started_to is not None else None, "wallet": wallet})


@operations("GET /api/v1/vendor/sessions")
def list_vendor_sessions(*, status: str | Sequence[str] | None = None, started_from: Moment | None = None,
                         started_to: Moment | None = None, wallet: str | None = None, limit: int | None = None,
                         cursor: str | None = None) -> Call[VendorSessionPage]:
    """One page of the vendor's sessions, newest first (vendor key). `started_from` is inclusive, `started_to`
    exclusive; pass the page's `next_cursor` as `cursor` for the next (or use `iter_vendor_sessions`)."""
    return Call("GET", "/api/v1/vendor/sessions", _model(VendorSessionPage), auth=Auth.VENDOR_KEY,
                params={**_session_filters(status, started_from, started_to, wallet),
                        **_query(limit=limit, cursor=cursor)})


def vendor_sessions_csv(*, status: str | Sequence[str] | None, started_from: Moment | None,
                        started_to: Moment | None, wallet: str | None) -> Call[str]:
    """Every matching session as CSV (read in chunks by `download_vendor_sessions_csv`)."""
    return Call("GET", "/api/v1/vendor/sessions", _text, auth=Auth.VENDOR_KEY, accept="text/csv",
                params={**_session_filters(status, started_from, started_to, wallet), "format": "csv"})


@operations("GET /api/v1/vendor/sessions/{session_id}")
def get_vendor_session(session_id: str) -> Call[VendorSessionDetail]:
    """One of the vendor's sessions with every charge line (vendor key)."""
    return Call("GET", f"/api/v1/vendor/sessions/{_segment(session_id)}", _model(VendorSessionDetail),
                auth=Auth.VENDOR_KEY)


@operations("GET /api/v1/vendor/charges/summary")
def vendor_charges_summary(*, started_from: Moment | None = None, started_to: Moment | None = None,
                           group_by: Literal["asset", "day"] = "asset") -> Call[ChargesSummary]:
    """Net earnings per asset, or per UTC day and asset (vendor key)."""
    return Call("GET", "/api/v1/vendor/charges/summary", _model(ChargesSummary), auth=Auth.VENDOR_KEY,
                params={**_session_filters(None, started_from, started_to, None), "group_by": group_by})


@operations("GET /api/v1/vendor/webhooks/deliveries")
def list_webhook_deliveries(*, status: str | Sequence[str] | None = None, event_type: str | None = None,
                            limit: int | None = None, cursor: str | None = None) -> Call[DeliveryPage]:
    """One page of the vendor's webhook deliveries with every attempt (vendor key); `status`: pending, delivered,
    dead."""
    statuses = status if status is None or isinstance(status, str) else ",".join(status)
    return Call("GET", "/api/v1/vendor/webhooks/deliveries", _model(DeliveryPage), auth=Auth.VENDOR_KEY,
                params=_query(status=statuses, event_type=event_type, limit=limit, cursor=cursor))


@operations("POST /api/v1/vendor/webhooks/deliveries/{delivery_id}/redeliver")
def redeliver_webhook(delivery_id: str, *, idempotency_key: str | None = None) -> Call[Delivery]:
    """Deliver one of the vendor's dead or delivered messages again (vendor key); `DeliveryPending` while it is
    still being retried."""
    return _post(f"/api/v1/vendor/webhooks/deliveries/{_segment(delivery_id)}/redeliver", _model(Delivery),
                 auth=Auth.VENDOR_KEY, idempotency_key=idempotency_key)


@operations("GET /api/v1/vendor/account")
def get_vendor_account() -> Call[VendorAccount]:
    """The calling vendor: its name, webhook URL and its keys' prefixes and dates (vendor key)."""
    return Call("GET", "/api/v1/vendor/account", _model(VendorAccount), auth=Auth.VENDOR_KEY)


@operations("POST /api/v1/vendor/keys/rotate")
def rotate_own_vendor_key(*, overlap_seconds: int | None = None,
                          idempotency_key: str | None = None) -> Call[RotatedVendorKey]:
    """A new key for the calling vendor, shown once; the key that calls and its other live keys keep working for
    `overlap_seconds` (default: the gateway's setting), so servers can switch without an outage. The client keeps
    sending its own key: build a new client with the new one (vendor key)."""
    return _post("/api/v1/vendor/keys/rotate", _model(RotatedVendorKey), auth=Auth.VENDOR_KEY,
                 idempotency_key=idempotency_key, body=_body(overlap_seconds=overlap_seconds))


# --- operator ------------------------------------------------------------------------------------------------------

@operations("POST /api/v1/admin/vendors")
def create_vendor(name: str, *, direct_charge_grace_seconds: int = 0,
                  idempotency_key: str | None = None) -> Call[CreatedVendor]:
    """Register a vendor (operator key); its `api_key` is shown only in this answer."""
    return _post("/api/v1/admin/vendors", _model(CreatedVendor), auth=Auth.OPERATOR_KEY,
                 idempotency_key=idempotency_key,
                 body=_body(name=name, direct_charge_grace_seconds=direct_charge_grace_seconds))


@operations("GET /api/v1/admin/payouts")
def list_payouts(*, status: Sequence[str] = (), funding_source: str | None = None,
                 limit: int | None = None) -> Call[Payouts]:
    """The payouts of refunds, newest first (operator key): Ethereum orders to pay, Zcash sends and their outcome."""
    return Call("GET", "/api/v1/admin/payouts", _model(Payouts), auth=Auth.OPERATOR_KEY, params=_query(
        status=",".join(status) if status else None, funding_source=funding_source, limit=limit))


@operations("POST /api/v1/admin/payouts/{id}/resolve")
def resolve_payout(payout_id: str, outcome: Literal["sent", "not_sent"], *, txid: str | None = None,
                   note: str = "", idempotency_key: str | None = None) -> Call[Payout]:
    """The operator's word on a Zcash send the node cannot tell about: `sent` (in `txid`) or `not_sent` (it is sent
    again)."""
    return _post(f"/api/v1/admin/payouts/{_segment(payout_id)}/resolve", _model(Payout), auth=Auth.OPERATOR_KEY,
                 idempotency_key=idempotency_key, body=_body(outcome=outcome, txid=txid, note=note))


@operations("POST /api/v1/admin/payouts/{id}/verify")
def verify_payout(payout_id: str, tx_hash: str, *, idempotency_key: str | None = None) -> Call[Payout]:
    """Name the transaction that paid an Ethereum payout order (operator key); checked on chain now."""
    return _post(f"/api/v1/admin/payouts/{_segment(payout_id)}/verify", _model(Payout), auth=Auth.OPERATOR_KEY,
                 idempotency_key=idempotency_key, body=_body(tx_hash=tx_hash))


@operations("GET /api/v1/admin/vendors/{vendor_id}/keys")
def list_vendor_keys(vendor_id: str) -> Call[VendorKeys]:
    """The vendor's API keys: prefixes and dates, never the keys (operator key)."""
    return Call("GET", f"/api/v1/admin/vendors/{_segment(vendor_id)}/keys", _model(VendorKeys),
                auth=Auth.OPERATOR_KEY)


@operations("POST /api/v1/admin/vendors/{vendor_id}/keys/rotate")
def rotate_vendor_key(vendor_id: str, *, overlap_seconds: int | None = None,
                      idempotency_key: str | None = None) -> Call[RotatedVendorKey]:
    """A new key for the vendor, shown once; its current keys keep working for `overlap_seconds` (operator key)."""
    return _post(f"/api/v1/admin/vendors/{_segment(vendor_id)}/keys/rotate", _model(RotatedVendorKey),
                 auth=Auth.OPERATOR_KEY, idempotency_key=idempotency_key, body=_body(overlap_seconds=overlap_seconds))


@operations("POST /api/v1/admin/vendors/{vendor_id}/keys/revoke")
def revoke_vendor_keys(vendor_id: str, *, key_prefix: str | None = None, revoke_all: bool = False,
                       idempotency_key: str | None = None) -> Call[RevokedVendorKeys]:
    """Revoke one key (`key_prefix`) or, with `revoke_all`, every live key of the vendor, at once (operator key)."""
    return _post(f"/api/v1/admin/vendors/{_segment(vendor_id)}/keys/revoke", _model(RevokedVendorKeys),
                 auth=Auth.OPERATOR_KEY, idempotency_key=idempotency_key,
                 body=_body(key_prefix=key_prefix, all=revoke_all or None))


@operations("PUT /api/v1/admin/vendors/{vendor_id}/webhook")
def set_vendor_webhook(vendor_id: str, url: str | None, *,
                       idempotency_key: str | None = None) -> Call[WebhookSetting]:
    """Point the vendor's webhook at `url` (None removes it); the answer's `secret` verifies its deliveries
    (operator key)."""
    body = json.dumps({"url": url}, separators=(",", ":")).encode()  # an explicit null removes the webhook
    return _post(f"/api/v1/admin/vendors/{_segment(vendor_id)}/webhook", _model(WebhookSetting), method="PUT",
                 auth=Auth.OPERATOR_KEY, idempotency_key=idempotency_key, body=body)


@operations("POST /api/v1/admin/webhooks/{delivery_id}/redeliver")
def redeliver_any_webhook(delivery_id: str, *, idempotency_key: str | None = None) -> Call[Delivery]:
    """Deliver any outbox message again, a vendor webhook or a reminder (operator key)."""
    return _post(f"/api/v1/admin/webhooks/{_segment(delivery_id)}/redeliver", _model(Delivery),
                 auth=Auth.OPERATOR_KEY, idempotency_key=idempotency_key)


@operations("GET /api/v1/admin/overview")
def operator_overview() -> Call[OperatorOverview]:
    """Active sessions and permissions, what awaits payment or confirmation, the webhook backlog and the scheduler's
    jobs (operator key)."""
    return Call("GET", "/api/v1/admin/overview", _model(OperatorOverview), auth=Auth.OPERATOR_KEY)


@operations("GET /api/v1/admin/timeseries")
def operator_timeseries(*, days: int | None = None) -> Call[OperatorTimeseries]:
    """Active sessions per hour and net revenue per vendor per UTC day over the last `days` days, today included
    (1 to 90; default 7) (operator key)."""
    return Call("GET", "/api/v1/admin/timeseries", _model(OperatorTimeseries), auth=Auth.OPERATOR_KEY,
                params=_query(days=days))


@operations("GET /api/v1/admin/permissions/{permission_id}/audit")
def get_permission_audit(permission_id: str) -> Call[AuditTrail]:
    """The audit trail of one permission: every change of its status and balance and every ledger entry, oldest
    first (operator key)."""
    return Call("GET", f"/api/v1/admin/permissions/{_segment(permission_id)}/audit", _model(AuditTrail),
                auth=Auth.OPERATOR_KEY)


# --- operations ----------------------------------------------------------------------------------------------------

@operations("GET /api/v1/health")
def health() -> Call[Health]:
    """Every dependency's check; `status` is ok, degraded or down (a down report is an answer, not an error).
    Detailed health is the operator's (operator key)."""
    return Call("GET", "/api/v1/health", _model(Health), auth=Auth.OPERATOR_KEY, answers=frozenset({503}))


@operations("GET /api/v1/health/live")
def health_live() -> Call[Status]:
    """The gateway process answers."""
    return Call("GET", "/api/v1/health/live", _model(Status))


@operations("GET /api/v1/health/ready")
def health_ready() -> Call[bool]:
    """Whether the gateway can take money now (database up, migrations applied)."""
    return Call("GET", "/api/v1/health/ready", lambda response: response.status_code == 200,
                answers=frozenset({503}))


@operations("GET /metrics")
def metrics() -> Call[str]:
    """The Prometheus metrics, as text (operator key)."""
    return Call("GET", "/metrics", _text, auth=Auth.OPERATOR_KEY)


@operations("GET /api/v1/openapi.json")
def openapi() -> Call[dict[str, Any]]:
    """The gateway's OpenAPI 3.1 document."""
    return Call("GET", "/api/v1/openapi.json", _json)
