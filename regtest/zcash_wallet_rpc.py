"""Wallet-side RPC methods that read or grow the wallet (accounts, addresses, listings, sync status), with zcashd's
and Zallet's shapes. Sending lives in zcash_send_rpc.

Listings cost what they return: `z_listunspent` walks the unspent notes only, `z_listreceivedbyaddress` the outputs
paid to one address, `z_listtransactions` the blocks in its height range and the unmined transactions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chains.jsonrpc import encode_json
from regtest.zcash_chain import Chain
from regtest.zcash_chain_rpc import parse_address, raw_transaction_hex
from regtest.zcash_params import as_int, as_list, as_string, as_u32, minconf
from regtest.zcash_types import (
    MAX_DIVERSIFIER_INDEX,
    ZALLET,
    ZCASHD,
    Account,
    Note,
    RpcMethodError,
    Transaction,
    memo_json,
    zallet_memo,
    zec,
)
from regtest.zcash_wallet import Wallet

MAX_CONFIRMATIONS = 9_999_999
_INDEX_KEYS = {"sapling": "output", "orchard": "action", "transparent": "tOut"}  # z_viewtransaction's output keys
SYNC_LOCK_MESSAGES = {
    -28: "Wallet sync required",
    -10: "Wallet is still catching up with the chain; try again later",
    -2: "Wallet is recovering from a chain reorganization; try again later",
}


@dataclass
class SyncLock:
    """The `regtest_setwalletsyncing` test control: wallet methods answer `code` until cleared, or for `calls`."""

    code: int | None = None
    calls: int | None = None

    def check(self) -> None:
        if self.code is None:
            return
        code = self.code
        if self.calls is not None:
            self.calls -= 1
            if self.calls <= 0:
                self.code = self.calls = None
        raise RpcMethodError(code, SYNC_LOCK_MESSAGES[code])


class WalletRpc:
    def __init__(self, chain: Chain, wallet: Wallet) -> None:
        self.chain = chain
        self.wallet = wallet
        self.sync = SyncLock()

    # --- accounts and addresses ------------------------------------------------------------------------------

    def z_getnewaccount(self, server: str, name: Any = None, seedfp: Any = None) -> dict[str, Any]:
        if server == ZALLET:
            if name is None:
                raise RpcMethodError(-32602, "Invalid params", "missing field `account_name`")
            as_string(server, name)
        account = self.wallet.new_account(name)
        if server == ZCASHD:
            return {"account": account.number}
        return {"account_uuid": account.uuid}

    def z_listaccounts(self, server: str, include_addresses: Any = True) -> list[dict[str, Any]]:
        listed = []
        for account in self.wallet.accounts:
            addresses = [
                {"diversifier_index": address.diversifier_index, "ua": address.text}
                for address in account.addresses.values()
            ]
            if server == ZCASHD:
                listed.append({"account": account.number, "addresses": addresses})
                continue
            entry: dict[str, Any] = {"account_uuid": account.uuid}
            if account.name is not None:
                entry["name"] = account.name
            entry.update(
                seedfp=self.wallet.seed_fingerprint, zip32_account_index=account.number, account=account.number
            )
            if include_addresses:
                entry["addresses"] = addresses
            listed.append(entry)
        return listed

    def z_getaddressforaccount(
        self, server: str, account_param: Any, receiver_types: Any = None, diversifier_index: Any = None
    ) -> dict[str, Any]:
        account = self.account_for(server, account_param)
        types = _receiver_types(server, receiver_types)
        index = None
        if diversifier_index is not None:
            index = as_int(server, diversifier_index)
            if not 0 <= index <= MAX_DIVERSIFIER_INDEX:
                raise RpcMethodError(-8, "Invalid diversifier index: must be between 0 and 2^88 - 1")
        address = self.wallet.address_for(account, types, index)
        result: dict[str, Any] = {}
        if server == ZCASHD:
            result["account"] = account.number
        else:
            result["account_uuid"] = account.uuid
            if isinstance(account_param, int):
                result["account"] = account.number
        result.update(diversifier_index=address.diversifier_index, receiver_types=types, address=address.text)
        return result

    def account_for(self, server: str, value: Any) -> Account:
        if server == ZCASHD:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 2:
                raise RpcMethodError(-8, "Invalid account number, must be 0 <= account <= (2^31)-2.")
            found = self.wallet.account_by_number(value)
            if found is None:
                raise RpcMethodError(-8, f"Error: account {value} has not been generated by z_getnewaccount.")
            return found
        if isinstance(value, int) and not isinstance(value, bool):
            found = self.wallet.account_by_number(value)
        elif isinstance(value, str):
            try:
                found = self.wallet.account_by_uuid(str(uuid.UUID(value)))
            except ValueError:
                raise RpcMethodError(-8, "Invalid account parameter: not a UUID or ZIP 32 account index") from None
        else:
            raise RpcMethodError(-32602, "Invalid params", "account must be a UUID string or an integer")
        if found is None:
            raise RpcMethodError(-4, f"Error: account {encode_json(value)} has not been generated by z_getnewaccount.")
        return found

    # --- listings --------------------------------------------------------------------------------------------

    def z_listreceivedbyaddress(
        self, server: str, text: Any, min_confirmations: Any = None, as_of_height: Any = None
    ) -> list[dict[str, Any]]:
        """zcashd: every output received at one address (spent or not), per address, not per account."""
        least = minconf(server, min_confirmations, default=1)
        address = parse_address(self.wallet.network, as_string(server, text))
        if address is None:
            raise RpcMethodError(-5, "Invalid address")
        owner = self.wallet.owner_of(address)
        if owner is None:
            raise RpcMethodError(
                -5, "From address does not belong to this node, spending key or viewing key not found."
            )
        if address.kind != "unified" and owner.text != address.text:
            raise RpcMethodError(
                -8,
                "The provided address is a bare receiver from a Unified Address in this wallet. Provide the full "
                "UA instead.",
            )
        rows = []
        for tx, output in self.chain.outputs_to(address.receivers.items()):
            confirmations = self.chain.confirmations(tx.txid)
            if confirmations < least:
                continue
            mined = self.chain.mined_at(tx.txid)
            row: dict[str, Any] = {
                "pool": output.pool,
                "txid": tx.txid,
                "amount": zec(output.value_zat),
                "amountZat": output.value_zat,
            }
            if output.memo is not None:
                row.update(memo_json(output.memo))
            row.update(
                outindex=output.index,
                confirmations=confirmations,
                blockheight=mined[0] if mined else 0,
                blockindex=mined[1] if mined else -1,
                blocktime=self.chain.block_at(mined[0]).time if mined else tx.time,
                change=output.is_change,
            )
            rows.append(row)
        return rows

    def z_listunspent(
        self,
        server: str,
        min_confirmations: Any = None,
        max_confirmations: Any = None,
        include_watchonly: Any = None,
        addresses: Any = None,
        as_of_height: Any = None,
    ) -> list[dict[str, Any]]:
        """The wallet's unspent notes (Zallet: and transparent outputs), wallet-wide unless filtered."""
        least = minconf(server, min_confirmations, default=1)
        most = MAX_CONFIRMATIONS if max_confirmations is None else as_int(server, max_confirmations)
        if most < least:
            raise RpcMethodError(
                -8, "Maximum number of confirmations must be greater or equal to the minimum number of confirmations"
            )
        texts = None if addresses is None else as_list(server, addresses)
        if server == ZCASHD and texts == []:
            raise RpcMethodError(-8, "Invalid parameter, addresses array is empty.")
        filters = [self._unspent_filter(server, text) for text in texts or []]
        rows = []
        for note in self.wallet.unspent.values():
            if server == ZCASHD and note.output.pool == "transparent":
                continue  # zcashd lists transparent outputs with listunspent
            confirmations = self.chain.confirmations(note.txid)
            if not least <= confirmations <= most:
                continue
            if filters and not any(matches(note) for matches in filters):
                continue
            rows.append(self._unspent_row(server, note, confirmations))
        return rows

    def _unspent_filter(self, server: str, text: Any) -> Callable[[Note], bool]:
        address = parse_address(self.wallet.network, text)
        if address is None:
            if server == ZCASHD:
                raise RpcMethodError(-8, f"Invalid parameter, not a valid Zcash address: {text}")
            raise RpcMethodError(-8, "Not a valid Zcash address", text)
        if server == ZALLET:
            # Zallet filters at the account level: any address of an account selects all of its outputs.
            owner = self.wallet.owner_of(address)
            return lambda note: owner is not None and note.account is owner.account
        wanted = set(address.receivers.items())
        return lambda note: (note.output.receiver_kind, note.output.receiver) in wanted

    def _unspent_row(self, server: str, note: Note, confirmations: int) -> dict[str, Any]:
        output = note.output
        if server == ZCASHD:
            row: dict[str, Any] = {
                "txid": note.txid,
                "pool": output.pool,
                "outindex": output.index,
                "confirmations": confirmations,
                "spendable": True,
                "account": note.account.number,
            }
            if note.address is not None:  # omitted for a note received at an internal (change) address
                row["address"] = note.address.text
            row.update(amount=zec(output.value_zat), amountZat=output.value_zat)
            if output.memo is not None:
                row.update(memo_json(output.memo))
            row["change"] = output.is_change
            return row
        row = {
            "txid": note.txid,
            "pool": output.pool,
            "outindex": output.index,
            "confirmations": confirmations,
            "is_watch_only": False,
        }
        if note.address is not None:
            row["address"] = self.wallet.receiver_text(note.address, output.receiver_kind)
        row.update(
            account_uuid=note.account.uuid,
            walletInternal=note.address is None,
            value=zec(output.value_zat),
            valueZat=output.value_zat,
        )
        if output.memo is not None:
            row.update(memo_json(output.memo))
        return row

    def z_listtransactions(
        self,
        server: str,
        account_uuid: Any = None,
        start_height: Any = None,
        end_height: Any = None,
        offset: Any = None,
        limit: Any = None,
    ) -> list[dict[str, Any]]:
        """Zallet (experimental): one row per (account, transaction) that touched the account, mined ones by height
        then unmined ones; `start_height` inclusive, `end_height` exclusive and mined only; then offset/limit."""
        wanted = None
        if account_uuid is not None:
            text = as_string(server, account_uuid)
            try:
                wanted = str(uuid.UUID(text))
            except ValueError:
                raise RpcMethodError(-8, f"not a valid UUID: {text}") from None
        start, end, skip, count = (as_u32(server, value) for value in (start_height, end_height, offset, limit))
        last = self.chain.height if end is None else min(end - 1, self.chain.height)
        touched = [
            self.chain.transactions[txid]
            for height in range(start or 0, last + 1)
            for txid in self.chain.block_at(height).txids
            if txid in self.wallet.effects
        ]
        if end is None:
            touched += [tx for tx in self.chain.unmined() if tx.txid in self.wallet.effects]
        touched.sort(key=lambda tx: (self._sort_height(tx), tx.sequence))
        rows = [
            (tx, account)
            for tx in touched
            for account in self.wallet.effects[tx.txid]  # the sender first, then receivers in output order
            if wanted is None or account == wanted
        ]
        first = skip or 0
        page = rows[first:] if count is None else rows[first : first + count]
        return [self._transaction_row(tx, account) for tx, account in page]

    def _sort_height(self, tx: Transaction) -> int:
        mined = self.chain.mined_at(tx.txid)
        return tx.expiry_height if mined is None else mined[0]

    def _transaction_row(self, tx: Transaction, account_uuid: str) -> dict[str, Any]:
        effect = self.wallet.effects[tx.txid][account_uuid]
        mined = self.chain.mined_at(tx.txid)
        block_time = None if mined is None else self.chain.block_at(mined[0]).time
        outputs = []
        for output in tx.outputs:
            note = self.wallet.notes.get((tx.txid, output.index))
            if note is None and tx.from_account is None:
                continue  # an output of someone else's transaction that the wallet did not receive
            to_address = output.address
            if note is not None:
                to_address = None if note.address is None else note.address.text
            outputs.append({
                "pool": output.pool,
                "output_index": output.index,
                "from_account": tx.from_account,
                "to_account": None if note is None else note.account.uuid,
                "to_address": to_address,
                "value": output.value_zat,
                "is_change": output.is_change,
                "memo": zallet_memo(output.memo),
            })
        return {
            "account_uuid": account_uuid,
            "mined_height": None if mined is None else mined[0],
            "txid": tx.txid,
            "expiry_height": tx.expiry_height,
            "account_balance_delta": effect.balance_delta_zat,
            "fee_paid": tx.fee_zat if tx.from_account is not None else None,
            "sent_note_count": effect.sent_note_count,
            "received_note_count": effect.received_note_count,
            "block_time": block_time,
            "block_datetime": None if block_time is None else _rfc3339(block_time),
            "expired_unmined": mined is None and self.chain.is_expired(tx),
            "outputs": outputs,
        }

    def gettransaction(self, server: str, txid: Any, include_watchonly: Any = None) -> dict[str, Any]:
        """zcashd: one wallet transaction with its depth: confirmations 0 in the mempool, -1 once it is neither in
        the chain nor in the mempool (expired or conflicted). Amounts and `details` cover transparent value only,
        as zcashd's do (shielded outputs are `z_viewtransaction`'s)."""
        text = as_string(server, txid).lower()
        tx = self.chain.transactions.get(text)
        if tx is None or text not in self.wallet.effects:
            raise RpcMethodError(-5, "Invalid or non-wallet transaction id")
        mined = self.chain.mined_at(tx.txid)
        expired = mined is None and self.chain.is_expired(tx)
        confirmations = -1 if expired else self.chain.confirmations(tx.txid)
        received = [
            output for output in tx.outputs
            if output.pool == "transparent" and (tx.txid, output.index) in self.wallet.notes
        ]
        spent = [
            self.chain.transactions[spent_txid].outputs[index] for spent_txid, index in tx.spends
        ]
        net_zat = sum(o.value_zat for o in received) - sum(o.value_zat for o in spent if o.pool == "transparent")
        entry: dict[str, Any] = {"amount": zec(net_zat), "amountZat": net_zat}
        entry["status"] = "mined" if mined else "expired" if expired else "waiting"
        entry["confirmations"] = confirmations
        if mined is not None:
            block = self.chain.block_at(mined[0])
            entry.update(blockhash=block.hash, blockindex=mined[1], blocktime=block.time)
        entry.update(
            expiryheight=tx.expiry_height,
            txid=tx.txid,
            walletconflicts=[],
            time=tx.time,
            timereceived=tx.time,
            details=[
                {"address": output.address, "category": "receive", "amount": zec(output.value_zat),
                 "amountZat": output.value_zat, "vout": output.index}
                for output in received
            ],
            hex=raw_transaction_hex(tx),
        )
        return entry

    def z_viewtransaction(self, server: str, txid_param: Any) -> dict[str, Any]:
        """A wallet transaction as the wallet sees it: the notes it spent and its outputs, each decrypted (value,
        memo) and marked `outgoing` when the wallet sent it to someone else. zcashd lists shielded parts only;
        Zallet also transparent outputs (`tOut`) and names the account of each."""
        txid = as_string(server, txid_param).lower()
        tx = self.chain.transactions.get(txid)
        if tx is None or txid not in self.wallet.effects:
            raise RpcMethodError(-5, "Invalid or non-wallet transaction id")
        spends = []
        for position, key in enumerate(tx.spends):
            note = self.wallet.notes[key]
            orchard = note.output.pool == "orchard"
            spend: dict[str, Any] = {"pool": note.output.pool, "action" if orchard else "spend": position,
                                     "txidPrev": key[0], "actionPrev" if orchard else "outputPrev": key[1]}
            if note.address is not None:
                spend["address"] = note.address.text
            spend.update(value=zec(note.output.value_zat), valueZat=note.output.value_zat)
            if server == ZALLET:
                spend["account_uuid"] = note.account.uuid
            spends.append(spend)
        outputs = []
        for output in tx.outputs:
            received = self.wallet.notes.get((tx.txid, output.index))
            if (server == ZCASHD and output.pool == "transparent") or (received is None and tx.from_account is None):
                continue
            entry: dict[str, Any] = {"pool": output.pool, _INDEX_KEYS[output.pool]: output.index}
            address = output.address if received is None else (received.address.text if received.address else None)
            if address is not None:
                entry["address"] = address
            entry.update(outgoing=received is None, walletInternal=output.is_change, value=zec(output.value_zat),
                         valueZat=output.value_zat)
            if output.memo is not None:
                entry.update(memo_json(output.memo))
            if server == ZALLET and received is not None:
                entry["account_uuid"] = received.account.uuid
            outputs.append(entry)
        return {"txid": tx.txid, "spends": spends, "outputs": outputs}

    # --- sync status -----------------------------------------------------------------------------------------

    def getwalletstatus(self, server: str) -> dict[str, Any]:
        """Zallet's shape; `fully_synced_height` is omitted while the wallet has no account to sync."""
        tip = {"blockhash": self.chain.tip.hash, "height": self.chain.height}
        status: dict[str, Any] = {"node_tip": tip, "wallet_tip": tip}
        if self.wallet.accounts:
            status["fully_synced_height"] = self.chain.height if self.sync.code is None else self.chain.height - 1
        if self.sync.code is not None:
            status["sync_work_remaining"] = {"unscanned_blocks": 1, "progress": {"numerator": 0, "denominator": 1}}
        return status

    def regtest_setwalletsyncing(self, server: str, code: Any, calls: Any = None) -> None:
        """Test control (not a real RPC): wallet methods answer `code` until cleared with null or 0, or for the
        next `calls` wallet calls."""
        if code in (None, 0):
            self.sync.code = self.sync.calls = None
            return
        if code not in SYNC_LOCK_MESSAGES:
            raise RpcMethodError(-8, f"code must be one of {sorted(SYNC_LOCK_MESSAGES)} or null")
        self.sync.code = code
        self.sync.calls = None if calls is None else as_int(server, calls)


def _receiver_types(server: str, value: Any) -> list[str]:
    if value is None or value == []:
        return ["orchard", "sapling", "p2pkh"]
    types = as_list(server, value)
    if "p2sh" in types:
        raise RpcMethodError(-4, "Error: P2SH addresses can not be created using this RPC method.")
    invalid = [kind for kind in types if kind not in ("orchard", "sapling", "p2pkh")]
    if invalid:
        verb = "is an invalid receiver type" if len(invalid) == 1 else "are invalid receiver types"
        raise RpcMethodError(-8, f"{invalid} {verb}. Arguments must be “p2pkh”, “sapling”, or “orchard”")
    if not {"orchard", "sapling"} & set(types):
        raise RpcMethodError(-8, "Error: cannot generate an address containing no shielded receivers.")
    return list(dict.fromkeys(types))


def _rfc3339(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

