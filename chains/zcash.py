"""The Zcash funding source: per-payment shielded addresses from a zcashd or Zallet wallet, payments read back
with their confirmations.

Two deployments are supported (see zcash.conf.example and the README):
- zcashd (or a zcashd wallet sidecar behind zebrad): one RPC endpoint for wallet and chain;
- Zallet with zebrad: wallet calls go to Zallet (accounts are UUIDs; no `z_listreceivedbyaddress`), chain calls to
  zebrad (`node_url`).

Payments are read two ways:
- the payment watcher scans the whole wallet once per pass from a cursor (`chain_tip`, `scan`: chains/zcash_scan.py)
  and billing matches the outputs to permissions by address;
- an explicit verify asks about one permission's address (`find_payments`): zcashd `z_listreceivedbyaddress`;
  Zallet `z_listunspent`, which Zallet filters per account only, so rows are matched on their `address` (it lists
  *unspent* outputs: a payment swept out of the wallet before it is recorded is found by the watcher only).

Each payment target gets a fresh Sapling-only unified address (`z_getaddressforaccount [account, ["sapling"]]`),
or, with `transparent_receivers`, one that also has a P2PKH receiver for wallets that cannot send shielded. Zallet
hands out transparent receivers from a gap window (ten unused ones in a row, then -4): when it refuses, that
permission gets a Sapling-only address instead; the window frees up as those addresses are paid. zcashd has no gap
limit. Amounts are read from the integer `*Zat` fields only.

Refunds (`SendsRefunds`) are sent from the service account with `z_sendmany`, never retried: an answer that does
not come (a timeout, a dropped connection) leaves the outcome unknown, and `send_outcome` asks the node — the
operation by id, else the node's operations by what they send, else the wallet's transactions since the send
began (`z_viewtransaction` on the mempool and the blocks since) — before anything is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp

from chains.jsonrpc import JsonRpcClient, RpcAuthError, RpcError, RpcFailure, RpcUnavailable
from chains.zcash_address import (
    ZcashAddress,
    ZcashNetwork,
    encode_sapling,
    encode_unified,
    validate_address,
)
from chains.zcash_scan import ZalletScan, ZcashdScan
from kernel.errors import InvalidAddress, NetworkMismatch, ServiceUnavailable
from kernel.funding import (
    ChainTip,
    FundingInstructions,
    FundingRequest,
    KnownPayment,
    OutgoingPayment,
    Payment,
    PaymentMatching,
    PaymentTarget,
    ScanCursor,
    ScanResult,
    SendOutcome,
    SendState,
    SourceStatus,
    WalletBalance,
)

logger = logging.getLogger(__name__)

UNAVAILABLE_CODE = "zcash_node_unavailable"
RETRY_AFTER_UNAVAILABLE = 5
RETRY_AFTER_MISCONFIGURED = 60
MAX_CONFIRMATIONS = 9_999_999
# Receiver types of per-payment addresses. Shielded-only: Zallet hands out transparent receivers from a gap window
# of 10 unused addresses (then -4), and a zcashd sidecar behind zebrad cannot use Orchard from NU6.3 on, so no p2pkh
# and no Orchard receiver.
PAYMENT_RECEIVER_TYPES = ["sapling"]
TRANSPARENT_PAYMENT_RECEIVER_TYPES = ["p2pkh", "sapling"]  # with ZCASH_TRANSPARENT_RECEIVERS
GAP_LIMIT_CODE = -4
# A refund pays the ZIP 317 conventional fee (5,000 zatoshis per logical action, at least two) of a send that spends
# one or two Sapling notes of the service account, with change: two Sapling actions (bundles are padded to two),
# plus one for a transparent recipient, or two more for an Orchard-only recipient (a second shielded bundle). A send
# that needs more notes costs the wallet more; the difference is the service's.
ZIP317_MARGINAL_FEE_ZAT = 5_000
SAPLING_SEND_ACTIONS = 2
# Refunds are sent with this privacy policy: it allows a transparent recipient (a t-address wallet) and crossing
# pools (a unified address whose best receiver is Orchard), and never reveals the service account's senders.
REFUND_PRIVACY_POLICY = "AllowRevealedRecipients"
# zcashd and Zallet make a transaction expire 40 blocks after the block it was made at (-txexpirydelta): a send
# whose transaction is not found this many blocks later can no longer be mined.
NEVER_MINED_AFTER_BLOCKS = 50
SEND_POLLS = 30  # how often a send's operation is asked about before the answer says `pending` (0.1 s apart)
SEND_POLL_SECONDS = 0.1
FINISHED_OPERATIONS = ("success", "failed")
RUNNING_OPERATIONS = ("queued", "executing")
NOT_A_WALLET_TRANSACTION = -5
NEW_ACCOUNT_NAME = "paygo"
SYNCED_PROGRESS = Decimal("0.9999")  # verificationprogress at or above this counts as synced (zebrad has no IBD flag)


class ZcashFundingSource:
    """`FundingSource` for ZEC. `account` is a zcashd account number, a Zallet account UUID, or a unified address
    of the account; None uses the wallet's first account (creating one if it has none). `personality` "auto"
    asks `getwalletstatus`, which only Zallet has. `node_url` is zebrad's URL for Zallet; zcashd serves both.
    `network` None follows the network the node says it serves (`getblockchaininfo`'s `chain`, asked at start-up
    or on first contact); a configured network the node does not serve is a NetworkMismatch."""

    name = "zcash"
    matching = PaymentMatching.BY_ADDRESS

    def __init__(
        self,
        *,
        wallet_url: str,
        node_url: str | None = None,
        user: str | None,
        password: str | None,
        network: ZcashNetwork | None,
        min_confirmations: int,
        account: str | None = None,
        personality: str = "auto",
        timeout: float = 10.0,
        retry_backoff: float = 0.2,
        transparent_receivers: bool = False,
    ) -> None:
        if personality not in ("auto", "zcashd", "zallet"):
            raise ValueError(f"personality must be auto, zcashd or zallet, not {personality!r}")
        self._configured_network = network
        self._node_network: ZcashNetwork | None = None  # what the node said it serves, once asked
        self.min_confirmations = min_confirmations
        self._configured_account = account
        self._personality = None if personality == "auto" else personality
        client_options: dict[str, Any] = {
            "user": user, "password": password, "timeout": timeout, "retry_backoff": retry_backoff
        }
        self._wallet = JsonRpcClient(wallet_url, **client_options)
        self._node = (
            JsonRpcClient(node_url, **client_options)
            if node_url is not None and node_url != wallet_url
            else self._wallet
        )
        self._has_node_url = node_url is not None
        self._account_param: int | str | None = None  # what z_getaddressforaccount takes
        self._account_uuid: str | None = None  # Zallet: to keep only this account's rows
        self._setup_lock = asyncio.Lock()
        self._scanner: ZcashdScan | ZalletScan | None = None
        self.transparent_receivers = transparent_receivers
        self._spending_address: str | None = None  # a unified address of the account, which z_sendmany spends from

    @property
    def network(self) -> ZcashNetwork:
        """The network addresses are checked against: the configured one (once the node agreed, or before it was
        reached), else the node's."""
        network = self._configured_network or self._node_network
        if network is None:
            raise ServiceUnavailable("the Zcash node has not said yet which network it serves (ZCASH_NETWORK is "
                                     "not set)", code=UNAVAILABLE_CODE, retry_after=RETRY_AFTER_UNAVAILABLE)
        return network

    async def check_network(self) -> None:
        """Ask the node which chain it serves: follow it when ZCASH_NETWORK is unset, refuse a different one."""
        if self._node_network is not None:
            return
        try:
            info = await self._node.call("getblockchaininfo")
        except RpcFailure as error:
            raise _service_error("getblockchaininfo", error) from error
        self._agree_on(info)

    def _agree_on(self, info: dict[str, Any]) -> None:
        chain = info.get("chain")
        try:
            served = ZcashNetwork(str(chain))
        except ValueError:
            raise NetworkMismatch(f"the Zcash node serves an unknown network {chain!r}") from None
        if self._configured_network is not None and served != self._configured_network:
            raise NetworkMismatch(f"ZCASH_NETWORK is {self._configured_network} but the node at ZCASH_RPC_URL "
                                  f"serves {served}; the operator must fix one or the other")
        if self._node_network is None:
            logger.info("the Zcash node serves %s", served)
        self._node_network = served

    # --- FundingSource ---------------------------------------------------------------------------------------

    def validate_address(self, address: str) -> str:
        return validate_address(address.strip(), self.network).text

    async def prepare_funding(self, request: FundingRequest) -> FundingInstructions:
        account = await self._account()
        try:
            result = await self._new_payment_address(account)
        except RpcFailure as error:
            raise _service_error("z_getaddressforaccount", error) from error
        return FundingInstructions(payment_address=result["address"], locator=str(result["diversifier_index"]))

    async def _new_payment_address(self, account: int | str) -> dict[str, Any]:
        """A fresh address of the account; with transparent receivers, Sapling-only once Zallet's gap window is full."""
        if self.transparent_receivers:
            try:
                return await self._wallet.call("z_getaddressforaccount", account, TRANSPARENT_PAYMENT_RECEIVER_TYPES)
            except RpcError as error:
                if error.code != GAP_LIMIT_CODE or "gap limit" not in error.message:
                    raise
                logger.info("the wallet's transparent gap window is full: a Sapling-only address instead")
        result: dict[str, Any] = await self._wallet.call("z_getaddressforaccount", account, PAYMENT_RECEIVER_TYPES)
        return result

    async def find_payments(self, targets: Sequence[PaymentTarget]) -> dict[str, list[Payment]]:
        found: dict[str, list[Payment]] = {target.key: [] for target in targets}
        with_address = [target for target in targets if target.payment_address]
        if not with_address:
            return found
        try:
            if await self._detect_personality() == "zallet":
                await self._find_with_zallet(with_address, found)
            else:
                await self._find_with_zcashd(with_address, found)
        except RpcFailure as error:
            raise _service_error("finding payments", error) from error
        return found

    async def chain_tip(self) -> ChainTip:
        try:
            return await (await self._scan_strategy()).tip()
        except (RpcFailure, KeyError, TypeError) as error:
            raise _service_error("reading the wallet's tip", _malformed(error)) from error

    async def scan(self, cursor: ScanCursor | None, tip: ChainTip, known: Sequence[KnownPayment],
                   waiting_since: datetime | None) -> ScanResult:
        """Everything the wallet received since `cursor` (every block when None: the wallet's listing has no
        use for `waiting_since`), and the `known` payments still there."""
        try:
            return await (await self._scan_strategy()).scan(cursor, tip, known)
        except (RpcFailure, KeyError, TypeError) as error:
            raise _service_error("scanning the wallet", _malformed(error)) from error

    async def status(self) -> SourceStatus:
        """Also whether the wallet still holds the account payments go to (a node restored without its wallet
        answers every chain call, yet cannot hand out a payment address)."""
        try:
            personality = await self._detect_personality()
            info = await self._node.call("getblockchaininfo")
            self._agree_on(info)
            tip_hash = info["bestblockhash"]
            header = await self._node.call("getblockheader", tip_hash, True)
            synced = _chain_synced(info)
            detail = personality
            if personality == "zallet":
                wallet_status = await self._wallet.call("getwalletstatus")
                wallet_synced = _wallet_synced(wallet_status)
                synced = synced and wallet_synced
                if not wallet_synced:
                    detail = "zallet: wallet still syncing"
            wallet_ready = await self._account_in_wallet() if synced else None  # a syncing wallet refuses calls
            if wallet_ready is False:
                detail = f"{personality}: the wallet no longer holds the service account"
        except (RpcFailure, ServiceUnavailable, KeyError, TypeError, ValueError) as error:
            return SourceStatus(name=self.name, reachable=False, detail=str(error))
        return SourceStatus(
            name=self.name,
            reachable=True,
            height=info["blocks"],
            tip_hash=tip_hash,
            synced=synced,
            tip_age_seconds=max(int(time.time()) - int(header["time"]), 0),
            detail=detail,
            wallet_ready=wallet_ready,
        )

    async def _account_in_wallet(self) -> bool | None:
        """Whether the account payments go to is still in the wallet's `z_listaccounts`; None when that cannot be
        told now (not resolved yet: the first payment address resolves or creates it; or the wallet is busy)."""
        if self._account_param is None:
            return None
        try:
            accounts = await self._wallet.call("z_listaccounts")
        except RpcFailure:
            return None  # the status says how the node is doing; this only adds what it can tell
        return any(account.get("account") == self._account_param or account.get("account_uuid") == self._account_param
                   for account in accounts)

    async def close(self) -> None:
        await self._wallet.close()
        if self._node is not self._wallet:
            await self._node.close()

    # --- balance -----------------------------------------------------------------------------------------------

    async def wallet_balance(self, address: str, asset: str) -> WalletBalance:
        """Confirmed zatoshis on the address's transparent receiver, from the chain node's address index (0 for
        a shielded-only address); a shielded or unified address also holds funds only its viewing key can see
        (`hidden`). `units` is None when the node says its address index is disabled (zcashd without
        -insightexplorer)."""
        decoded = validate_address(address.strip(), self.network)
        transparent = decoded.transparent_receiver()
        if transparent is None:
            return WalletBalance(units=0, hidden=decoded.is_shielded)
        try:
            result = await self._node.call("getaddressbalance", {"addresses": [transparent]})
        except RpcError as error:
            if error.code == -1 and "disabled" in error.message:
                return WalletBalance(units=None, hidden=decoded.is_shielded)
            raise _service_error("getaddressbalance", error) from error
        except RpcFailure as error:
            raise _service_error("getaddressbalance", error) from error
        return WalletBalance(units=_zat(result, "balance"), hidden=decoded.is_shielded)

    # --- refunds (SendsRefunds) ------------------------------------------------------------------------------

    def refund_fee_units(self, address: str) -> int:
        receivers = validate_address(address, self.network).receivers
        extra = 0
        if "sapling" not in receivers:
            extra = 2 if "orchard" in receivers else 1  # an Orchard bundle, or one transparent output
        return ZIP317_MARGINAL_FEE_ZAT * (SAPLING_SEND_ACTIONS + extra)

    def can_receive(self, address: str) -> bool:
        """Sprout addresses can no longer receive, and a TEX address only from transparent funds (ZIP 320), which
        the service account does not spend."""
        return validate_address(address, self.network).kind not in ("sprout", "tex")

    async def chain_height(self) -> int:
        try:
            height: int = await self._node.call("getblockcount")
        except RpcFailure as error:
            raise _service_error("getblockcount", error) from error
        return height

    async def send(self, payment: OutgoingPayment) -> SendOutcome:
        """`z_sendmany` from the service account, once; then its operation is followed for a few seconds."""
        try:
            account = await self._account()
            from_address = await self._refund_source(account)
        except (RpcFailure, ServiceUnavailable) as error:
            return SendOutcome(SendState.NOT_SENT, detail=str(error))
        recipient: dict[str, Any] = {"address": payment.address, "amount": Decimal(payment.amount_units).scaleb(-8)}
        memo = self._memo_hex(payment)
        if memo is not None:
            recipient["memo"] = memo
        try:
            operation_id = await self._wallet.send("z_sendmany", from_address, [recipient], self.min_confirmations,
                                                   None, REFUND_PRIVACY_POLICY)
        except RpcUnavailable as error:
            if isinstance(error.__cause__, aiohttp.ClientConnectorError):
                return SendOutcome(SendState.NOT_SENT, detail=f"the wallet could not be reached: {error}")
            return SendOutcome(SendState.UNKNOWN, detail=str(error))
        except RpcFailure as error:  # refused before anything was sent (funds, parameters, credentials, warming up)
            return SendOutcome(SendState.NOT_SENT, detail=str(error))
        for _ in range(SEND_POLLS):
            try:
                outcome = _outcome_of(await self._wallet.call("z_getoperationstatus", [operation_id]))
            except RpcFailure:
                break
            if outcome is not None and outcome.state != SendState.PENDING:
                return outcome
            await asyncio.sleep(SEND_POLL_SECONDS)
        return SendOutcome(SendState.PENDING, operation_id=operation_id)

    async def send_outcome(self, payment: OutgoingPayment, *, operation_id: str | None,
                           since_height: int) -> SendOutcome:
        try:
            operations = await self._wallet.call("z_getoperationstatus", [operation_id]) if operation_id else []
            if not operations:  # no id, or the node forgot it (operations live in its memory only)
                operations = [operation for operation in await self._wallet.call("z_getoperationstatus")
                              if _operation_sends(operation, payment, self._memo_hex(payment))]
            outcome = _outcome_of(operations)
            if outcome is not None:
                return outcome
            tip, txid = await self._sent_transaction(payment, since_height)
        except RpcFailure as error:
            return SendOutcome(SendState.UNKNOWN, operation_id=operation_id, detail=str(error))
        if txid is not None:
            return SendOutcome(SendState.SENT, operation_id=operation_id, txid=txid)
        if tip > since_height + NEVER_MINED_AFTER_BLOCKS:
            return SendOutcome(SendState.NOT_SENT, operation_id=operation_id,
                               detail=f"no transaction of this send in the {tip - since_height} blocks since it began")
        return SendOutcome(SendState.UNKNOWN, operation_id=operation_id,
                           detail="neither the node's operations nor the wallet's transactions show this send yet")

    def _memo_hex(self, payment: OutgoingPayment) -> str | None:
        """The memo as z_sendmany takes it (hex of its UTF-8), for a shielded recipient only: a transparent one
        cannot receive a memo."""
        if payment.memo is None or not validate_address(payment.address, self.network).is_shielded:
            return None
        return payment.memo.encode().hex()

    async def _refund_source(self, account: int | str) -> str:
        """A unified address of the service account (Sapling, where its payments are received), made once."""
        if self._spending_address is None:
            result = await self._wallet.call("z_getaddressforaccount", account, PAYMENT_RECEIVER_TYPES)
            self._spending_address = result["address"]
        return self._spending_address

    async def _sent_transaction(self, payment: OutgoingPayment, since_height: int) -> tuple[int, str | None]:
        """The chain's tip, and the wallet's transaction paying `payment` in the mempool or a block since
        `since_height`, if there is one."""
        tip: int = await self._node.call("getblockcount")
        heights = [str(height) for height in range(max(since_height, 0), tip + 1)]
        calls: list[tuple[str, list[Any]]] = [("getrawmempool", []), *(("getblock", [h, 1]) for h in heights)]
        listings = await self._node.batch(calls)
        candidates: list[str] = []
        for listing in listings:
            if isinstance(listing, RpcError):
                raise listing
            candidates += listing if isinstance(listing, list) else listing["tx"]
        candidates = list(dict.fromkeys(candidates))
        views = await self._wallet.batch([("z_viewtransaction", [txid]) for txid in candidates])
        ours = []
        for txid, view in zip(candidates, views, strict=True):
            if isinstance(view, RpcError):
                if view.code != NOT_A_WALLET_TRANSACTION:
                    raise view
                continue
            if view.get("spends"):  # it spent the wallet's notes: a send of ours
                ours.append((txid, view))
        if not ours:
            return tip, None
        if validate_address(payment.address, self.network).is_shielded:
            found = next((txid for txid, view in ours if _view_pays(view, payment)), None)
            return tip, found
        raw = await self._node.batch([("getrawtransaction", [txid, 1]) for txid, _ in ours])
        for (txid, _), transaction in zip(ours, raw, strict=True):
            if not isinstance(transaction, RpcError) and _vout_pays(transaction, payment):
                return tip, txid
        return tip, None

    # --- internals -----------------------------------------------------------------------------------------

    async def _detect_personality(self) -> str:
        """zcashd or Zallet (asked once); every call to the node comes through here, so the node's network is
        checked on first contact when it could not be at start-up."""
        if self._personality is None:
            async with self._setup_lock:
                if self._personality is None:
                    try:
                        await self._wallet.call("getwalletstatus")
                        self._personality = "zallet"
                    except RpcError as error:
                        if error.code != -32601:
                            raise _service_error("getwalletstatus", error) from error
                        self._personality = "zcashd"
                    except RpcFailure as error:
                        raise _service_error("getwalletstatus", error) from error
        if self._personality == "zallet" and not self._has_node_url:
            raise ServiceUnavailable(
                "Zallet has no chain methods: the operator must configure the zebrad RPC URL (node_url)",
                code=UNAVAILABLE_CODE,
                retry_after=RETRY_AFTER_MISCONFIGURED,
            )
        await self.check_network()
        return self._personality

    async def _scan_strategy(self) -> ZcashdScan | ZalletScan:
        if self._scanner is None:
            if await self._detect_personality() == "zallet":
                account_uuid = str(await self._account())  # Zallet names accounts by UUID
                self._scanner = ZalletScan(self._wallet, self._node, self.network, account_uuid)
            else:
                self._scanner = ZcashdScan(self._wallet, self.network)
        return self._scanner

    async def _account(self) -> int | str:
        """The account parameter for z_getaddressforaccount, resolved once from the configuration."""
        personality = await self._detect_personality()
        async with self._setup_lock:
            if self._account_param is None:
                try:
                    self._account_param, self._account_uuid = await self._resolve_account(personality)
                except RpcFailure as error:
                    raise _service_error("resolving the wallet account", error) from error
            return self._account_param

    async def _resolve_account(self, personality: str) -> tuple[int | str, str | None]:
        configured = (self._configured_account or "").strip() or None
        if configured is not None and configured.isdigit() and personality == "zcashd":
            return int(configured), None
        if configured is not None and _is_uuid(configured):
            return str(uuid.UUID(configured)), str(uuid.UUID(configured))
        accounts = await self._wallet.call("z_listaccounts")
        if configured is not None:  # a Zallet ZIP 32 account index, or a unified address of the account
            for account in accounts:
                addresses = account.get("addresses") or []
                if account.get("account") == _int_or_none(configured) or any(
                    entry.get("ua") == configured.lower() for entry in addresses
                ):
                    return _account_key(account, personality), account.get("account_uuid")
            raise ServiceUnavailable(
                "the configured Zcash account is not in the wallet: the operator must fix the account setting",
                code=UNAVAILABLE_CODE,
                retry_after=RETRY_AFTER_MISCONFIGURED,
            )
        if accounts:
            return _account_key(accounts[0], personality), accounts[0].get("account_uuid")
        if personality == "zcashd":
            created = await self._wallet.call("z_getnewaccount")
            return created["account"], None
        created = await self._wallet.call("z_getnewaccount", NEW_ACCOUNT_NAME)
        return created["account_uuid"], created["account_uuid"]

    async def _find_with_zcashd(self, targets: list[PaymentTarget], found: dict[str, list[Payment]]) -> None:
        # minconf 0 so that mempool payments are seen (with 0 confirmations)
        addresses = list(dict.fromkeys(target.payment_address for target in targets if target.payment_address))
        replies = await self._wallet.batch([("z_listreceivedbyaddress", [address, 0]) for address in addresses])
        rows_by_address: dict[str, list[dict[str, Any]]] = {}
        for address, reply in zip(addresses, replies, strict=True):
            if isinstance(reply, RpcError):
                logger.error("z_listreceivedbyaddress %s failed: %s", address, reply)
                continue
            rows_by_address[address] = reply
        for target in targets:
            found[target.key] = [
                _payment(row, amount_key="amountZat", block_height=row.get("blockheight") or None)
                for row in rows_by_address.get(target.payment_address or "", [])
            ]

    async def _find_with_zallet(self, targets: list[PaymentTarget], found: dict[str, list[Payment]]) -> None:
        await self._account()
        unspent, wallet_status = await self._wallet.batch(
            [("z_listunspent", [0, MAX_CONFIRMATIONS, True]), ("getwalletstatus", [])]
        )
        for reply in (unspent, wallet_status):
            if isinstance(reply, RpcError):
                raise reply
        wallet_tip = (wallet_status.get("wallet_tip") or {}).get("height")
        rows = [row for row in unspent if row.get("account_uuid") == self._account_uuid]
        for target in targets:
            received_at = self._receiver_encodings(target.payment_address or "")
            found[target.key] = [
                _payment(row, amount_key="valueZat", block_height=_mined_height(wallet_tip, row["confirmations"]))
                for row in rows
                if row.get("address") in received_at
            ]

    def _receiver_encodings(self, address: str) -> set[str]:
        """How Zallet's z_listunspent names an output received at `address`: a Sapling address for a Sapling
        note, an Orchard-only unified address for an Orchard note, the t-address for a transparent output."""
        try:
            decoded: ZcashAddress = validate_address(address, self.network)
        except InvalidAddress:
            return set()
        encodings = {decoded.text}
        if "sapling" in decoded.receivers:
            encodings.add(encode_sapling(self.network, decoded.receivers["sapling"]))
        if "orchard" in decoded.receivers:
            encodings.add(encode_unified(self.network, {"orchard": decoded.receivers["orchard"]}))
        transparent = decoded.transparent_receiver()
        if transparent is not None:
            encodings.add(transparent)
        return encodings


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _account_key(account: dict[str, Any], personality: str) -> int | str:
    return account["account"] if personality == "zcashd" else account["account_uuid"]


def _zat(row: dict[str, Any], key: str) -> int:
    """An integer zatoshi field. The ZEC-denominated twin (`amount`, `value`) is never read."""
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcUnavailable(f"{key} is not an integer number of zatoshis: {value!r}")
    return value


def _mined_height(tip: int | None, confirmations: int) -> int | None:
    return tip - confirmations + 1 if tip is not None and confirmations > 0 else None


def _payment(row: dict[str, Any], *, amount_key: str, block_height: int | None) -> Payment:
    confirmations = int(row["confirmations"])
    return Payment(
        txid=row["txid"],
        output_index=int(row["outindex"]),
        amount_units=_zat(row, amount_key),
        confirmations=confirmations,
        block_height=block_height if confirmations > 0 else None,
        memo=row.get("memoStr"),
    )


def _outcome_of(operations: list[dict[str, Any]]) -> SendOutcome | None:
    """What the node's operations for one send say: a success names its transaction; one still running means
    wait; only failures means nothing was sent. None when there is no operation."""
    for operation in operations:
        if operation.get("status") == "success":
            return SendOutcome(SendState.SENT, operation_id=operation.get("id"),
                               txid=(operation.get("result") or {}).get("txid"))
    for operation in operations:
        if operation.get("status") in RUNNING_OPERATIONS:
            return SendOutcome(SendState.PENDING, operation_id=operation.get("id"))
    for operation in operations:
        if operation.get("status") == "failed":
            error = operation.get("error") or {}
            return SendOutcome(SendState.NOT_SENT, operation_id=operation.get("id"),
                               detail=f"the wallet refused the send: {error.get('message', error)}")
    return None


def _operation_sends(operation: Mapping[str, Any], payment: OutgoingPayment, memo: str | None) -> bool:
    """Whether a z_sendmany operation (its echoed parameters) pays exactly this payment (with this memo)."""
    params = operation.get("params") or {}
    amounts = params.get("amounts") if isinstance(params, Mapping) else None
    if operation.get("method") != "z_sendmany" or not isinstance(amounts, list) or len(amounts) != 1:
        return False
    [recipient] = amounts
    return (isinstance(recipient, Mapping) and recipient.get("address") == payment.address
            and _zatoshis(recipient.get("amount")) == payment.amount_units and recipient.get("memo") == memo)


def _view_pays(view: Mapping[str, Any], payment: OutgoingPayment) -> bool:
    """z_viewtransaction: an output the wallet sent to the payment's address, of its amount, with its memo."""
    return any(
        output.get("outgoing") and output.get("address") == payment.address
        and output.get("valueZat") == payment.amount_units
        and output.get("memoStr") == payment.memo
        for output in view.get("outputs") or []
    )


def _vout_pays(transaction: Mapping[str, Any], payment: OutgoingPayment) -> bool:
    """getrawtransaction: a transparent output of the payment's amount to its address."""
    return any(
        output.get("valueZat") == payment.amount_units
        and payment.address in ((output.get("scriptPubKey") or {}).get("addresses") or [])
        for output in transaction.get("vout") or []
    )


def _zatoshis(amount: Any) -> int | None:
    """A ZEC amount as an operation echoes it (a JSON number, parsed as Decimal or int) in zatoshis."""
    if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)):
        return None
    return int(Decimal(amount).scaleb(8))


def _chain_synced(info: dict[str, Any]) -> bool:
    if "initial_block_download_complete" in info:
        return bool(info["initial_block_download_complete"])
    return info.get("verificationprogress", 0) >= SYNCED_PROGRESS


def _wallet_synced(wallet_status: dict[str, Any]) -> bool:
    """Zallet's wallet is synced when it has reached the node's tip and reports no sync work left."""
    wallet_tip = wallet_status.get("wallet_tip")
    node_tip = wallet_status.get("node_tip") or {}
    return (
        wallet_tip is not None
        and wallet_tip.get("height") == node_tip.get("height")
        and "sync_work_remaining" not in wallet_status
    )


def _malformed(error: Exception) -> Exception:
    """A reply missing a field, or with one of the wrong type, is a node failure like any other."""
    return error if isinstance(error, RpcFailure) else RpcUnavailable(f"malformed reply: {error!r}")


def _service_error(doing: str, error: Exception) -> ServiceUnavailable:
    """Node failures as the client-facing error. Messages never carry credentials."""
    if isinstance(error, ServiceUnavailable):
        return error
    if isinstance(error, RpcAuthError):
        return ServiceUnavailable(
            f"the Zcash node refused the gateway's RPC credentials while {doing}; the operator must fix the "
            "Zcash RPC user/password configuration",
            code=UNAVAILABLE_CODE,
            retry_after=RETRY_AFTER_MISCONFIGURED,
        )
    if isinstance(error, RpcUnavailable):
        return ServiceUnavailable(
            f"the Zcash node is unavailable ({doing}): {error}", code=UNAVAILABLE_CODE,
            retry_after=RETRY_AFTER_UNAVAILABLE,
        )
    return ServiceUnavailable(
        f"the Zcash node refused a request ({doing}): {error}", code=UNAVAILABLE_CODE,
        retry_after=RETRY_AFTER_UNAVAILABLE,
    )
