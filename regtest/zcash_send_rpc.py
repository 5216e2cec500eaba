"""Sending: `z_sendmany` (from the faucet or from a wallet address), its asynchronous operations, and the
`regtest_failnextsend` test hook.

Where zcashd and Zallet differ, each is followed: zcashd checks the parameters at once and reports funding and
privacy-policy refusals in the operation (status "failed", code -8); Zallet refuses those at once (-8 for the
privacy policy, -4 for funds), takes no `fee` (it must be null), has no "LegacyCompat" policy and answers
`{txid, txids, broadcast}` where zcashd answers `{txid}`.

`ANY_TADDR` is the stand-in's faucet: funds from outside the wallet that pay anyone, with no privacy policy applied.
"""

from __future__ import annotations

import binascii
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from regtest.zcash_chain import Chain
from regtest.zcash_chain_rpc import parse_address
from regtest.zcash_params import amount_zat, as_list, as_string, minconf, type_error
from regtest.zcash_spend import (
    PRIVACY_POLICIES,
    ZCASHD_DEFAULT_MINCONF,
    Recipient,
    SendRequest,
    build_send,
    choose_receiver,
    recipient_output,
)
from regtest.zcash_types import (
    MEMO_SIZE,
    SHIELDED_POOLS,
    TRANSPARENT_KINDS,
    ZALLET,
    ZCASHD,
    ZIP317_GRACE_ACTIONS,
    ZIP317_MARGINAL_FEE_ZAT,
    RpcMethodError,
    SendInterrupted,
    WalletAddress,
    zec,
)
from regtest.zcash_wallet import Wallet

FAUCET = "ANY_TADDR"
FAIL_MODES = ("hang", "timeout", "crash_after_send")


@dataclass
class Operation:
    opid: str
    creation_time: int
    context: dict[str, Any]  # the call's parameters, as the server echoes them
    status: str = "executing"  # then "success" or "failed"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status != "executing"

    def as_json(self, server: str) -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        if self.error is not None:
            outcome["error"] = self.error
        if self.result is not None:
            outcome["result"] = self.result
        if server == ZCASHD:
            if self.result is not None:
                outcome["execution_secs"] = Decimal("0.001")
            return {
                "id": self.opid, "status": self.status, "creation_time": self.creation_time, **outcome,
                "method": "z_sendmany", "params": self.context,
            }
        if self.result is not None:
            outcome["execution_secs"] = 0
        return {
            "id": self.opid, "method": "z_sendmany", "params": self.context, "status": self.status,
            "creation_time": self.creation_time, **outcome,
        }


class SendRpc:
    def __init__(self, chain: Chain, wallet: Wallet) -> None:
        self.chain = chain
        self.wallet = wallet
        self.operations: dict[str, Operation] = {}
        self.fail_next_send: str | None = None

    def z_sendmany(
        self, server: str, from_address: Any, amounts: Any, min_confirmations: Any = None, fee: Any = None,
        privacy_policy: Any = None,
    ) -> str:
        if server == ZALLET and fee is not None:
            raise RpcMethodError(-8, "Zallet always calculates fees internally; the fee field must be null.")
        from_text = as_string(server, from_address)
        entries = as_list(server, amounts)
        if not entries:
            raise RpcMethodError(-8, "Invalid parameter, amounts array is empty.")
        seen: set[str] = set()
        recipients = tuple(self._recipient(server, entry, seen) for entry in entries)
        source = None if from_text == FAUCET else self._source(server, from_text)
        revealable = self._revealable(server, privacy_policy)
        least = None if min_confirmations is None else minconf(server, min_confirmations, default=0)
        fee_zat = None if fee is None else amount_zat(fee)
        context: dict[str, Any] = {"fromaddress": from_address, "amounts": entries}
        if server == ZCASHD:
            context["minconf"] = ZCASHD_DEFAULT_MINCONF if least is None else least
            if fee_zat is not None:
                context["fee"] = zec(fee_zat)
        else:
            context["minconf"] = least
        operation = Operation(f"opid-{uuid.uuid4()}", int(time.time()), context)
        if source is None:
            self._pay_from_faucet(server, operation, recipients, fee_zat)
        else:
            request = SendRequest(source[0], source[1], recipients, least, fee_zat, revealable)
            self._send_from_wallet(server, operation, request)
        self.operations[operation.opid] = operation
        return operation.opid

    def z_getoperationstatus(self, server: str, opids: Any = None) -> list[dict[str, Any]]:
        return [operation.as_json(server) for operation in self._operations(server, opids)]

    def z_getoperationresult(self, server: str, opids: Any = None) -> list[dict[str, Any]]:
        """The finished operations, which are then forgotten; unfinished ones stay and are not listed."""
        finished = [operation for operation in self._operations(server, opids) if operation.finished]
        for operation in finished:
            del self.operations[operation.opid]
        return [operation.as_json(server) for operation in finished]

    def regtest_failnextsend(self, server: str, mode: Any) -> None:
        """Test control (not a real RPC): make the next `z_sendmany` from a wallet address (never the faucet's)
        fail the way a real node can, so that callers' reconciliation can be tested. Null clears it. Modes:

        - "hang": the call answers an operation id, but the operation stays "executing" for ever and nothing is
          sent (a stuck prover or a node that stopped mid-operation).
        - "timeout": the transaction is sent and its operation succeeds, but the reply never comes: the node
          holds the request open until the client gives up or the node stops. Only `z_getoperationstatus`
          without ids, or the wallet's listings, tell the caller what happened.
        - "crash_after_send": the transaction is sent, then the node "restarts": the connection drops without a
          reply and every operation is forgotten (zcashd keeps them in memory only); the transaction stays in
          the mempool and the wallet.

        A call refused before anything is sent (parameters, funds, privacy policy) leaves the hook for the next.
        """
        if mode is not None and mode not in FAIL_MODES:
            raise RpcMethodError(-8, f"mode must be one of {list(FAIL_MODES)} or null")
        self.fail_next_send = mode

    # --- steps -----------------------------------------------------------------------------------------------

    def _pay_from_faucet(
        self, server: str, operation: Operation, recipients: tuple[Recipient, ...], fee_zat: int | None
    ) -> None:
        outputs = [
            recipient_output(index, recipient, choose_receiver(recipient.address, set()))
            for index, recipient in enumerate(recipients)
        ]
        if fee_zat is None:
            fee_zat = ZIP317_MARGINAL_FEE_ZAT * max(ZIP317_GRACE_ACTIONS, len(outputs))
        needed = sum(output.value_zat for output in outputs) + fee_zat
        if needed > self.wallet.faucet_zat:
            self._refuse(server, operation, RpcMethodError(
                -8 if server == ZCASHD else -4,
                f"Insufficient funds: have {zec(self.wallet.faucet_zat)}, need {zec(needed)}.",
            ))
            return
        self._succeed(server, operation, self.wallet.faucet_send(outputs, fee_zat))

    def _send_from_wallet(self, server: str, operation: Operation, request: SendRequest) -> None:
        mode, self.fail_next_send = self.fail_next_send, None
        if mode == "hang":
            return
        txid = self.chain.new_txid()
        try:
            tx = build_send(self.wallet, request, txid, self.chain.next_sequence(), int(time.time()))
        except RpcMethodError as error:
            self.fail_next_send = mode  # nothing was sent: the hook waits for the next send
            self._refuse(server, operation, error)
            return
        self.wallet.broadcast(tx)
        self._succeed(server, operation, tx.txid)
        if mode == "timeout":
            self.operations[operation.opid] = operation
            raise SendInterrupted(mode)
        if mode == "crash_after_send":
            self.operations.clear()
            raise SendInterrupted(mode)

    @staticmethod
    def _succeed(server: str, operation: Operation, txid: str) -> None:
        operation.status = "success"
        operation.result = {"txid": txid} if server == ZCASHD else {"txid": txid, "txids": [txid], "broadcast": True}

    @staticmethod
    def _refuse(server: str, operation: Operation, error: RpcMethodError) -> None:
        if server != ZCASHD:
            raise error  # Zallet proposes the transaction before answering
        operation.status = "failed"
        operation.error = error.as_json()

    def _operations(self, server: str, opids: Any) -> list[Operation]:
        wanted = set() if opids is None else {as_string(server, opid) for opid in as_list(server, opids)}
        found = [op for opid, op in self.operations.items() if not wanted or opid in wanted]
        return sorted(found, key=lambda operation: operation.creation_time)

    # --- parameters ------------------------------------------------------------------------------------------

    def _recipient(self, server: str, entry: Any, seen: set[str]) -> Recipient:
        if not isinstance(entry, dict):
            if server == ZCASHD:
                raise RpcMethodError(-8, "Invalid parameter, expected object")
            raise type_error(server, "an object")
        unknown = set(entry) - {"address", "amount", "memo"}
        if unknown:
            raise RpcMethodError(-8, f"Invalid parameter, unknown key: {min(unknown)}")
        text = entry.get("address")
        address = parse_address(self.wallet.network, text)
        if address is None or address.kind in ("sprout", "tex"):
            raise RpcMethodError(-5, f"Invalid parameter, unknown address format: {text}")
        if address.text in seen:
            raise RpcMethodError(-8, f"Invalid parameter, duplicated recipient address: {text}")
        seen.add(address.text)
        value_zat = amount_zat(entry.get("amount"))
        if value_zat <= 0:
            raise RpcMethodError(-8, "Invalid parameter, amount must be positive")
        memo_hex = entry.get("memo")
        if memo_hex is None:
            return Recipient(address, value_zat, None)
        if address.kind in TRANSPARENT_KINDS:
            raise RpcMethodError(-8, "Invalid parameter, memos cannot be sent to transparent addresses.")
        return Recipient(address, value_zat, _memo_bytes(memo_hex))

    def _source(self, server: str, text: str) -> tuple[WalletAddress, tuple[str, ...]]:
        """The wallet address a send spends from, and the shielded pools it may draw on."""
        address = parse_address(self.wallet.network, text)
        if address is None:
            raise RpcMethodError(-5, "Invalid from address: should be a taddr, zaddr, UA, or the string 'ANY_TADDR'.")
        owner = self.wallet.owner_of(address)
        if address.kind == "unified":
            if owner is None:
                raise RpcMethodError(-5, "Invalid from address, UA does not correspond to a known account.")
            return owner, tuple(pool for pool in SHIELDED_POOLS if pool in address.receivers)
        if owner is None:
            raise RpcMethodError(-5, "Invalid from address, no payment source found for address.")
        if server == ZCASHD:
            raise RpcMethodError(
                -5,
                "Invalid from address: is a bare receiver from a Unified Address in this wallet. Provide the UA as "
                "returned by z_getaddressforaccount instead.",
            )
        if address.kind == "sapling":
            return owner, ("sapling",)
        raise RpcMethodError(-4, "Failed to propose transaction: the regtest stand-in does not spend transparent funds")

    @staticmethod
    def _revealable(server: str, privacy_policy: Any) -> frozenset[str]:
        if privacy_policy is None:
            name = "LegacyCompat" if server == ZCASHD else "FullPrivacy"
        elif isinstance(privacy_policy, str):
            name = privacy_policy
        else:
            raise type_error(server, "a string")
        if name == "LegacyCompat":
            if server != ZCASHD:
                raise RpcMethodError(-8, "LegacyCompat privacy policy is unsupported in Zallet")
            # A send from a wallet address always involves a unified address here (bare receivers are refused).
            return PRIVACY_POLICIES["FullPrivacy"]
        if name not in PRIVACY_POLICIES:
            if server == ZCASHD:
                raise RpcMethodError(-8, f"Unknown privacy policy name '{name}'")
            raise RpcMethodError(-8, f"Unknown privacy policy {name}")
        return PRIVACY_POLICIES[name]


def _memo_bytes(memo_hex: Any) -> bytes:
    try:
        memo = binascii.unhexlify(memo_hex) if isinstance(memo_hex, str) else None
    except (binascii.Error, ValueError):
        memo = None
    if memo is None:
        raise RpcMethodError(-8, "Invalid parameter, expected memo data in hexadecimal format.")
    if len(memo) > MEMO_SIZE:
        raise RpcMethodError(-8, f"Invalid parameter, memo is longer than the maximum allowed {MEMO_SIZE} bytes.")
    return memo + bytes(MEMO_SIZE - len(memo))
