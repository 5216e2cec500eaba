"""An in-memory Zcash regtest node speaking zcashd-compatible JSON-RPC, for tests and the gateway's embedded default.

No Zcash node can be installed on this machine, so this stand-in reproduces what PayGo relies on, with the shapes,
HTTP statuses, Content-Types and error codes of the real software (see shared/reference/zcash-ethereum-rpc.md):

- personality "zcashd": one URL serves wallet and chain methods; errors come with HTTP 500 (-32600 -> 400,
  -32601 -> 404); Content-Type exactly `application/json`; params must be an array; bad credentials get a 401 with
  an empty body after 250 ms.
- personality "zallet": `/` is Zallet (wallet methods only, accounts are UUIDs, `z_listunspent` with
  `value`/`valueZat` filtered per account, a transparent gap limit of 10, no `z_listreceivedbyaddress`) and `/node`
  is zebrad (chain methods, method errors with HTTP 200, bad credentials drop the connection); both answer with
  `application/json; charset=utf-8` (jsonrpsee).

The chain is a tree of blocks whose best valid branch is the active chain; `generate` mines the mempool,
`invalidateblock` / `reconsiderblock` make reorgs, and a transaction not in the active chain is in the mempool
(0 confirmations). A faucet pays anyone through `z_sendmany ["ANY_TADDR", ...]`. Addresses are real encodings
(`chains.zcash_address`) of deterministic per-account, per-index receiver bytes; no cryptography is modelled.

`regtest_setwalletsyncing [code, calls?]` is a test control that no real node has: it makes wallet methods answer
-28, -10 (Zallet catching up) or -2 (Zallet's reorg sync lock) until cleared, or for the next `calls` calls.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import BasicAuth, web

from kernel.errors import InvalidAddress
from chains.jsonrpc import decode_json, encode_json
from chains.zcash_address import (
    ZcashAddress,
    ZcashNetwork,
    encode_sapling,
    encode_transparent,
    encode_unified,
    validate_address,
)

ZATOSHI_PER_ZEC = 100_000_000
DEFAULT_FAUCET_ZAT = 10_000 * ZATOSHI_PER_ZEC
MAX_MONEY_ZAT = 21_000_000 * ZATOSHI_PER_ZEC
MEMO_SIZE = 512
NO_MEMO = b"\xf6" + bytes(MEMO_SIZE - 1)
TRANSPARENT_GAP_LIMIT = 10  # Zallet's default external gap limit (zcash_keys gap_limits.rs)
MAX_DIVERSIFIER_INDEX = 2**88 - 1
ZIP317_MARGINAL_FEE_ZAT = 5_000
ZIP317_GRACE_ACTIONS = 2
AUTH_FAILURE_DELAY_SECONDS = 0.25  # zcashd and Zallet sleep this long before answering 401
CONSENSUS_BRANCH_ID = "c8e71055"  # NU6
SYNC_LOCK_MESSAGES = {
    -28: "Wallet sync required",
    -10: "Wallet is still catching up with the chain; try again later",
    -2: "Wallet is recovering from a chain reorganization; try again later",
}

ZCASHD = "zcashd"
ZALLET = "zallet"
ZEBRAD = "zebrad"
PERSONALITIES = (ZCASHD, ZALLET)

# Which servers offer which methods: zcashd has both sides, Zallet the wallet side, zebrad the chain side.
CHAIN_SERVERS = frozenset({ZCASHD, ZEBRAD})
WALLET_SERVERS = frozenset({ZCASHD, ZALLET})
ALL_SERVERS = frozenset({ZCASHD, ZALLET, ZEBRAD})


class RpcMethodError(Exception):
    """A JSON-RPC error object to answer with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass
class Block:
    hash: str
    height: int
    parent: str | None
    time: int
    sequence: int  # arrival order, to prefer the first-seen branch between branches of equal height
    txids: list[str]


@dataclass(frozen=True)
class Output:
    """One output of a faucet transaction; `index` is the recipient's position in the `z_sendmany` amounts."""

    index: int
    address: str  # the address the sender used
    receiver_kind: str  # "p2pkh", "p2sh", "sapling" or "orchard": the receiver the output was sent to
    receiver: bytes
    value_zat: int
    memo: bytes | None  # 512 bytes for shielded outputs, None for transparent ones

    @property
    def pool(self) -> str:
        return "transparent" if self.receiver_kind in ("p2pkh", "p2sh") else self.receiver_kind


@dataclass
class Transaction:
    txid: str
    time: int
    outputs: list[Output]
    fee_zat: int
    sequence: int


@dataclass
class WalletAddress:
    account: Account
    diversifier_index: int
    receiver_types: list[str]
    receivers: dict[str, bytes]
    text: str


@dataclass
class Account:
    number: int  # zcashd account number, Zallet's ZIP 32 account index
    uuid: str
    name: str | None
    addresses: dict[int, WalletAddress] = field(default_factory=dict)


@dataclass
class Operation:
    opid: str
    creation_time: int
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": self.opid,
            "status": "success" if self.error is None else "failed",
            "creation_time": self.creation_time,
            "method": "z_sendmany",
            "params": self.params,
        }
        if self.error is None:
            status["result"] = self.result
            status["execution_secs"] = Decimal("0.001")
        else:
            status["error"] = self.error
        return status


@dataclass(frozen=True)
class _Method:
    handler: Callable[..., Any]
    names: tuple[str, ...]  # parameter names, for jsonrpsee's named params and for the arity check
    required: int
    servers: frozenset[str]
    wallet: bool = False  # refused while the wallet sync lock is set
    zcashd_names: tuple[str, ...] | None = None  # where zcashd takes fewer parameters than Zallet


def _zec(zat: int) -> Decimal:
    """Zatoshis as a ZEC amount with 8 decimals (a JSON number)."""
    return Decimal(zat).scaleb(-8).quantize(Decimal("0.00000001"))


def _memo_json(memo: bytes) -> dict[str, str]:
    """`memo` (hex of all 512 bytes) and, when the memo is text (ZIP 302: first byte <= 0xF4), `memoStr`."""
    fields = {"memo": memo.hex()}
    if memo[0] <= 0xF4:
        try:
            fields["memoStr"] = memo.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError:
            pass
    return fields


def _script_pubkey(kind: str, hash20: bytes) -> str:
    if kind == "p2pkh":
        return f"76a914{hash20.hex()}88ac"
    return f"a914{hash20.hex()}87"


class RegtestZcash:
    """The node's state (chain, mempool, wallet, faucet) and its RPC methods. `server` tells a method which
    software is answering ("zcashd", "zallet" or "zebrad"), since shapes differ between them."""

    def __init__(self, *, personality: str, faucet_zat: int, address_index: bool = True) -> None:
        if personality not in PERSONALITIES:
            raise ValueError(f"personality must be one of {PERSONALITIES}, not {personality!r}")
        self.personality = personality
        self.network = ZcashNetwork.REGTEST
        self.faucet_zat = faucet_zat
        self.address_index = address_index  # zcashd: -insightexplorer; zebrad always has it
        self._seed = secrets.token_bytes(32)
        self._sequence = 0
        self.blocks: dict[str, Block] = {}
        self.invalid_blocks: set[str] = set()
        self.chain: list[str] = []  # active chain, block hashes by height
        self.transactions: dict[str, Transaction] = {}
        self._mined_at: dict[str, tuple[int, int]] = {}  # txid -> (height, position in block)
        self.accounts: list[Account] = []
        self._wallet_receivers: dict[tuple[str, bytes], WalletAddress] = {}
        self._transparent_indices: dict[str, list[int]] = {}  # account uuid -> indices with a p2pkh receiver
        self.operations: dict[str, Operation] = {}
        self.sync_lock_code: int | None = None
        self.sync_lock_calls: int | None = None
        self._add_block(parent=None, txids=[])
        self.methods = self._method_table()

    # --- chain ---------------------------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _add_block(self, parent: str | None, txids: list[str]) -> Block:
        height = 0 if parent is None else self.blocks[parent].height + 1
        sequence = self._next_sequence()
        block_hash = hashlib.sha256(self._seed + f"block:{parent}:{height}:{sequence}".encode()).hexdigest()
        previous_time = self.blocks[parent].time if parent is not None else 0
        block = Block(block_hash, height, parent, max(int(time.time()), previous_time + 1), sequence, txids)
        self.blocks[block_hash] = block
        self._select_best_chain()
        return block

    def _is_valid(self, block_hash: str) -> bool:
        current: str | None = block_hash
        while current is not None:
            if current in self.invalid_blocks:
                return False
            current = self.blocks[current].parent
        return True

    def _select_best_chain(self) -> None:
        """The active chain ends at the highest valid block; on a tie the current tip stays, else the first seen."""
        current_tip = self.chain[-1] if self.chain else None
        candidates = [block for block in self.blocks.values() if self._is_valid(block.hash)]
        best = max(candidates, key=lambda block: (block.height, block.hash == current_tip, -block.sequence))
        chain: list[str] = []
        current: str | None = best.hash
        while current is not None:
            chain.append(current)
            current = self.blocks[current].parent
        self.chain = chain[::-1]
        self._mined_at = {
            txid: (height, position)
            for height, block_hash in enumerate(self.chain)
            for position, txid in enumerate(self.blocks[block_hash].txids, start=1)  # position 0: coinbase
        }

    @property
    def height(self) -> int:
        return len(self.chain) - 1

    @property
    def tip(self) -> Block:
        return self.blocks[self.chain[-1]]

    def mempool(self) -> list[Transaction]:
        waiting = [tx for txid, tx in self.transactions.items() if txid not in self._mined_at]
        return sorted(waiting, key=lambda tx: tx.sequence)

    def confirmations(self, txid: str) -> int:
        mined = self._mined_at.get(txid)
        return 0 if mined is None else self.height - mined[0] + 1

    def _block_confirmations(self, block: Block) -> int:
        on_chain = block.height < len(self.chain) and self.chain[block.height] == block.hash
        return self.height - block.height + 1 if on_chain else -1

    def _block_json(self, block: Block, verbosity: int) -> dict[str, Any]:
        header: dict[str, Any] = {
            "hash": block.hash,
            "confirmations": self._block_confirmations(block),
            "height": block.height,
            "version": 4,
            "merkleroot": hashlib.sha256(("".join(block.txids) or block.hash).encode()).hexdigest(),
            "finalsaplingroot": "00" * 32,
            "time": block.time,
            "nonce": "00" * 32,
            "bits": "200f0f0f",
            "difficulty": Decimal(1),
            "chainwork": f"{block.height + 1:064x}",
        }
        if block.parent is not None:
            header["previousblockhash"] = block.parent
        if header["confirmations"] > 1:
            header["nextblockhash"] = self.chain[block.height + 1]
        if verbosity == 0:
            return header
        transactions: list[Any] = list(block.txids)
        if verbosity >= 2:
            transactions = [self._transaction_json(ZCASHD, self.transactions[txid]) for txid in block.txids]
        return {**header, "size": 1000 + 500 * len(block.txids), "tx": transactions}

    def _find_block(self, server: str, hash_or_height: Any) -> Block:
        is_height = (isinstance(hash_or_height, int) and not isinstance(hash_or_height, bool)) or (
            isinstance(hash_or_height, str) and hash_or_height.isdigit()
        )
        if is_height:
            height = int(hash_or_height)
            if not 0 <= height <= self.height:
                raise RpcMethodError(-8, "Block height out of range")
            return self.blocks[self.chain[height]]
        block_hash = self._string(server, hash_or_height)
        if block_hash not in self.blocks:
            raise RpcMethodError(-5, "Block not found")
        return self.blocks[block_hash]

    # --- transactions --------------------------------------------------------------------------------------

    def _transaction_json(self, server: str, tx: Transaction) -> dict[str, Any]:
        transparent = [output for output in tx.outputs if output.pool == "transparent"]
        shielded_value = sum(output.value_zat for output in tx.outputs if output.pool != "transparent")
        vout = []
        for output in transparent:
            entry: dict[str, Any] = {"value": _zec(output.value_zat), "valueZat": output.value_zat}
            if server == ZCASHD:
                entry["valueSat"] = output.value_zat
            entry["n"] = output.index
            entry["scriptPubKey"] = {
                "asm": "",
                "hex": _script_pubkey(output.receiver_kind, output.receiver),
                "reqSigs": 1,
                "type": "pubkeyhash" if output.receiver_kind == "p2pkh" else "scripthash",
                "addresses": [encode_transparent(self.network, output.receiver_kind, output.receiver)],
            }
            vout.append(entry)
        sapling_outputs = [output for output in tx.outputs if output.pool == "sapling"]
        orchard_actions = [output for output in tx.outputs if output.pool == "orchard"]
        tx_json: dict[str, Any] = {
            "hex": self._raw_transaction_hex(tx),
            "txid": tx.txid,
            "authdigest": hashlib.sha256(bytes.fromhex(tx.txid)).hexdigest(),
            "size": len(self._raw_transaction_hex(tx)) // 2,
            "overwintered": True,
            "version": 5,
            "versiongroupid": "26a7270a",
            "locktime": 0,
            "expiryheight": self.height + 40,
            "vin": [],
            "vout": vout,
            "vjoinsplit": [],
            "valueBalance": _zec(-shielded_value) if sapling_outputs else Decimal(0),
            "valueBalanceZat": -shielded_value if sapling_outputs else 0,
            "vShieldedSpend": [],
            "vShieldedOutput": [{"cmu": hashlib.sha256(o.receiver).hexdigest()} for o in sapling_outputs],
            "orchard": {"actions": [{"cmx": hashlib.sha256(o.receiver).hexdigest()} for o in orchard_actions]},
        }
        mined = self._mined_at.get(tx.txid)
        if mined is not None:
            block = self.blocks[self.chain[mined[0]]]
            tx_json.update(
                blockhash=block.hash, height=block.height, confirmations=self.confirmations(tx.txid),
                time=block.time, blocktime=block.time,
            )
        return tx_json

    @staticmethod
    def _raw_transaction_hex(tx: Transaction) -> str:
        return "050000800a27a726" + tx.txid + "".join(f"{o.value_zat:016x}" for o in tx.outputs)

    # --- wallet --------------------------------------------------------------------------------------------

    def _receiver_bytes(self, account: Account, index: int, kind: str) -> bytes:
        size = 20 if kind == "p2pkh" else 43
        return hashlib.blake2b(
            f"{account.uuid}/{index}/{kind}".encode(), key=self._seed, digest_size=size
        ).digest()

    def _derive_address(self, account: Account, index: int, receiver_types: list[str]) -> WalletAddress:
        receivers = {kind: self._receiver_bytes(account, index, kind) for kind in receiver_types}
        address = WalletAddress(account, index, receiver_types, receivers, encode_unified(self.network, receivers))
        account.addresses[index] = address
        for kind, data in receivers.items():
            self._wallet_receivers[(kind, data)] = address
        if "p2pkh" in receivers:
            self._transparent_indices.setdefault(account.uuid, []).append(index)
        return address

    def _receiver_used(self, kind: str, data: bytes) -> bool:
        return any(
            output.receiver_kind == kind and output.receiver == data
            for tx in self.transactions.values()
            for output in tx.outputs
        )

    def _next_diversifier_index(self, account: Account, receiver_types: list[str]) -> int:
        highest = max(account.addresses, default=-1)
        if self.personality == ZCASHD:
            return highest + 1
        if "p2pkh" not in receiver_types:
            # Zallet gives shielded-only requests a time-based index, outside any transparent gap window.
            return max(int(time.time()), highest + 1)
        transparent = self._transparent_indices.get(account.uuid, [])
        unused_in_a_row = 0
        for index in transparent:
            used = self._receiver_used("p2pkh", account.addresses[index].receivers["p2pkh"])
            unused_in_a_row = 0 if used else unused_in_a_row + 1
        next_index = max(transparent, default=-1) + 1
        if unused_in_a_row >= TRANSPARENT_GAP_LIMIT:
            raise RpcMethodError(
                -4,
                "Error: reached the transparent gap limit while attempting to generate a new address at index "
                f"{next_index}.",
            )
        while next_index in account.addresses:
            next_index += 1
        return next_index

    def _account_for(self, server: str, value: Any) -> Account:
        if server == ZCASHD:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 2:
                raise RpcMethodError(-8, "Invalid account number, must be 0 <= account <= (2^31)-2.")
            found = next((account for account in self.accounts if account.number == value), None)
            if found is None:
                raise RpcMethodError(-8, f"Error: account {value} has not been generated by z_getnewaccount.")
            return found
        if isinstance(value, int) and not isinstance(value, bool):
            found = next((account for account in self.accounts if account.number == value), None)
        elif isinstance(value, str):
            try:
                wanted = str(uuid.UUID(value))
            except ValueError:
                raise RpcMethodError(-8, "Invalid account parameter: not a UUID or ZIP 32 account index") from None
            found = next((account for account in self.accounts if account.uuid == wanted), None)
        else:
            raise RpcMethodError(-32602, "Invalid params", "account must be a UUID string or an integer")
        if found is None:
            raise RpcMethodError(-4, f"Error: account {encode_json(value)} has not been generated by z_getnewaccount.")
        return found

    def _validated(self, text: Any) -> ZcashAddress | None:
        if not isinstance(text, str):
            return None
        try:
            return validate_address(text, self.network)
        except InvalidAddress:
            return None

    def _outputs_to(self, receivers: dict[str, bytes]) -> list[tuple[Transaction, Output]]:
        wanted = {(kind, data) for kind, data in receivers.items()}
        return [
            (tx, output)
            for tx in sorted(self.transactions.values(), key=lambda tx: tx.sequence)
            for output in tx.outputs
            if (output.receiver_kind, output.receiver) in wanted
        ]

    def _wallet_outputs(self) -> list[tuple[Transaction, Output, WalletAddress]]:
        return [
            (tx, output, self._wallet_receivers[(output.receiver_kind, output.receiver)])
            for tx in sorted(self.transactions.values(), key=lambda tx: tx.sequence)
            for output in tx.outputs
            if (output.receiver_kind, output.receiver) in self._wallet_receivers
        ]

    def _check_sync_lock(self) -> None:
        if self.sync_lock_code is None:
            return
        code = self.sync_lock_code
        if self.sync_lock_calls is not None:
            self.sync_lock_calls -= 1
            if self.sync_lock_calls <= 0:
                self.sync_lock_code = self.sync_lock_calls = None
        raise RpcMethodError(code, SYNC_LOCK_MESSAGES[code])

    # --- parameter helpers (zcashd wraps UniValue type errors as -1; jsonrpsee answers -32602) --------------

    @staticmethod
    def _type_error(server: str, expected: str) -> RpcMethodError:
        if server == ZCASHD:
            return RpcMethodError(-1, f"JSON value is not {expected} as expected")
        return RpcMethodError(-32602, "Invalid params", f"expected {expected}")

    def _int(self, server: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type_error(server, "an integer")
        return value

    def _string(self, server: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self._type_error(server, "a string")
        return value

    def _list(self, server: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self._type_error(server, "an array")
        return value

    def _minconf(self, server: str, value: Any, default: int) -> int:
        minconf = default if value is None else self._int(server, value)
        if minconf < 0:
            raise RpcMethodError(-8, "Minimum number of confirmations cannot be less than 0")
        return minconf

    @staticmethod
    def _amount_zat(value: Any) -> int:
        """zcashd's AmountFromValue: a number (or numeric string) with at most 8 decimals, within MoneyRange."""
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
            raise RpcMethodError(-3, "Amount is not a number or string")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise RpcMethodError(-3, "Invalid amount") from None
        if not amount.is_finite():
            raise RpcMethodError(-3, "Invalid amount")
        scaled = amount.scaleb(8)
        if scaled != scaled.to_integral_value():
            raise RpcMethodError(-3, "Invalid amount")
        zat = int(scaled)
        if not 0 <= zat <= MAX_MONEY_ZAT:
            raise RpcMethodError(-3, "Amount out of range")
        return zat

    # --- chain methods -------------------------------------------------------------------------------------

    def getblockchaininfo(self, server: str) -> dict[str, Any]:
        info: dict[str, Any] = {
            "chain": "regtest",
            "blocks": self.height,
            "headers": self.height,
            "bestblockhash": self.tip.hash,
            "difficulty": Decimal(1),
            "verificationprogress": Decimal(1),
            "estimatedheight": self.height,
            "chainwork": f"{self.height + 1:064x}",
            "size_on_disk": 1000 * (self.height + 1),
            "commitments": 0,
            "chainSupply": {"monitored": True, "chainValue": _zec(0), "chainValueZat": 0},
            "valuePools": [
                {"id": pool, "monitored": True, "chainValue": _zec(0), "chainValueZat": 0}
                for pool in ("transparent", "sprout", "sapling", "orchard", "lockbox")
            ],
            "upgrades": {},
            "consensus": {"chaintip": CONSENSUS_BRANCH_ID, "nextblock": CONSENSUS_BRANCH_ID},
        }
        if server == ZCASHD:
            info["initial_block_download_complete"] = True
            info["softforks"] = []
        return info

    def getblockcount(self, server: str) -> int:
        return self.height

    def getbestblockhash(self, server: str) -> str:
        return self.tip.hash

    def getblockhash(self, server: str, height: Any) -> str:
        height = self._int(server, height)
        if not 0 <= height <= self.height:
            raise RpcMethodError(-8, "Block height out of range")
        return self.chain[height]

    def getblock(self, server: str, hash_or_height: Any, verbosity: Any = 1) -> Any:
        block = self._find_block(server, hash_or_height)
        verbosity = self._int(server, verbosity)
        if verbosity == 0:
            return block.hash * 8  # stands for the serialized block
        return self._block_json(block, verbosity)

    def getblockheader(self, server: str, block_hash: Any, verbose: Any = True) -> Any:
        block = self._find_block(server, self._string(server, block_hash))
        if not verbose:
            return block.hash * 4  # stands for the serialized header
        return self._block_json(block, 0)

    def generate(self, server: str, count: Any) -> list[str]:
        count = self._int(server, count)
        if count < 0:
            raise RpcMethodError(-8, "Invalid number of blocks")
        hashes = []
        for _ in range(count):
            block = self._add_block(parent=self.tip.hash, txids=[tx.txid for tx in self.mempool()])
            hashes.append(block.hash)
        return hashes

    def invalidateblock(self, server: str, block_hash: Any) -> None:
        block = self._find_block(server, self._string(server, block_hash))
        if block.parent is None:
            raise RpcMethodError(-8, "Cannot invalidate the genesis block")
        self.invalid_blocks.add(block.hash)
        self._select_best_chain()

    def reconsiderblock(self, server: str, block_hash: Any) -> None:
        block = self._find_block(server, self._string(server, block_hash))
        self.invalid_blocks -= {other.hash for other in self.blocks.values() if self._descends(other, block)}
        current: str | None = block.hash
        while current is not None:
            self.invalid_blocks.discard(current)
            current = self.blocks[current].parent
        self._select_best_chain()

    def _descends(self, block: Block, ancestor: Block) -> bool:
        current: str | None = block.hash
        while current is not None and self.blocks[current].height >= ancestor.height:
            if current == ancestor.hash:
                return True
            current = self.blocks[current].parent
        return False

    def getrawmempool(self, server: str, verbose: Any = False) -> list[str]:
        return [tx.txid for tx in self.mempool()]

    def getaddressbalance(self, server: str, addresses: Any) -> dict[str, int]:
        if server == ZCASHD and not self.address_index:
            raise RpcMethodError(
                -1,
                "getaddressbalance is disabled. Run './zcash-cli help getaddressbalance' for instructions on "
                "how to enable this feature.",
            )
        if isinstance(addresses, dict):
            addresses = addresses.get("addresses")
        texts = [addresses] if isinstance(addresses, str) else self._list(server, addresses)
        wanted: set[tuple[str, bytes]] = set()
        for text in texts:
            address = self._validated(text)
            if address is None or address.kind not in ("p2pkh", "p2sh"):
                raise RpcMethodError(-5, "Invalid address")
            wanted.add((address.kind, address.receivers[address.kind]))
        total = sum(
            output.value_zat
            for tx in self.transactions.values()
            if tx.txid in self._mined_at
            for output in tx.outputs
            if (output.receiver_kind, output.receiver) in wanted
        )
        return {"balance": total, "received": total}

    def z_validateaddress(self, server: str, text: Any) -> dict[str, Any]:
        address = self._validated(text)
        if address is None:
            return {"isvalid": False}
        result: dict[str, Any] = {"isvalid": True, "address": address.text, "address_type": address.kind}
        ismine = server == ZCASHD and any(
            (kind, data) in self._wallet_receivers for kind, data in address.receivers.items()
        )
        if address.kind == "sapling":
            raw = address.receivers["sapling"]
            result.update(diversifier=raw[:11].hex(), diversifiedtransmissionkey=raw[11:][::-1].hex())
        if address.kind in ("p2pkh", "p2sh"):
            result["isscript"] = address.kind == "p2sh"
        result["ismine"] = ismine
        return result

    # --- methods on every server ---------------------------------------------------------------------------

    def validateaddress(self, server: str, text: Any) -> dict[str, Any]:
        address = self._validated(text)
        if address is None or address.kind not in ("p2pkh", "p2sh"):
            return {"isvalid": False}
        hash20 = address.receivers[address.kind]
        result: dict[str, Any] = {"isvalid": True, "address": address.text}
        if server != ZEBRAD:
            result["scriptPubKey"] = _script_pubkey(address.kind, hash20)
        if server == ZCASHD:
            result["ismine"] = (address.kind, hash20) in self._wallet_receivers
            result["iswatchonly"] = False
        result["isscript"] = address.kind == "p2sh"
        return result

    def getrawtransaction(self, server: str, txid: Any, verbose: Any = 0, blockhash: Any = None) -> Any:
        txid = self._string(server, txid)
        tx = self.transactions.get(txid.lower())
        if tx is None:
            if server == ZCASHD:
                raise RpcMethodError(
                    -5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
                )
            raise RpcMethodError(-5, "Transaction not found in mempool or best chain")
        if not verbose:
            return self._raw_transaction_hex(tx)
        return self._transaction_json(server, tx)

    # --- wallet methods ------------------------------------------------------------------------------------

    def z_getnewaccount(self, server: str, name: Any = None, seedfp: Any = None) -> dict[str, Any]:
        if server == ZALLET:
            if name is None:
                raise RpcMethodError(-32602, "Invalid params", "missing field `account_name`")
            self._string(server, name)
        account = Account(number=len(self.accounts), uuid=str(uuid.uuid4()), name=name)
        self.accounts.append(account)
        if server == ZCASHD:
            return {"account": account.number}
        return {"account_uuid": account.uuid}

    def z_listaccounts(self, server: str, include_addresses: Any = True) -> list[dict[str, Any]]:
        listed = []
        for account in self.accounts:
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
                seedfp=hashlib.sha256(self._seed).hexdigest(),
                zip32_account_index=account.number,
                account=account.number,
            )
            if include_addresses:
                entry["addresses"] = addresses
            listed.append(entry)
        return listed

    def z_getaddressforaccount(
        self, server: str, account_param: Any, receiver_types: Any = None, diversifier_index: Any = None
    ) -> dict[str, Any]:
        account = self._account_for(server, account_param)
        types = self._receiver_types(server, receiver_types)
        if diversifier_index is not None:
            index = self._int(server, diversifier_index)
            if not 0 <= index <= MAX_DIVERSIFIER_INDEX:
                raise RpcMethodError(-8, "Invalid diversifier index: must be between 0 and 2^88 - 1")
        else:
            index = self._next_diversifier_index(account, types)
        existing = account.addresses.get(index)
        if existing is not None and sorted(existing.receiver_types) != sorted(types):
            raise RpcMethodError(
                -4, f"Error: address at diversifier index {index} was already generated with different receiver types."
            )
        address = existing or self._derive_address(account, index, types)
        result: dict[str, Any] = {}
        if server == ZCASHD:
            result["account"] = account.number
        else:
            result["account_uuid"] = account.uuid
            if isinstance(account_param, int):
                result["account"] = account.number
        result.update(diversifier_index=index, receiver_types=types, address=address.text)
        return result

    def _receiver_types(self, server: str, value: Any) -> list[str]:
        if value is None or value == []:
            return ["orchard", "sapling", "p2pkh"]
        types = self._list(server, value)
        if "p2sh" in types:
            raise RpcMethodError(-4, "Error: P2SH addresses can not be created using this RPC method.")
        invalid = [kind for kind in types if kind not in ("orchard", "sapling", "p2pkh")]
        if invalid:
            verb = "is an invalid receiver type" if len(invalid) == 1 else "are invalid receiver types"
            raise RpcMethodError(-8, f"{invalid} {verb}. Arguments must be “p2pkh”, “sapling”, or “orchard”")
        if not {"orchard", "sapling"} & set(types):
            raise RpcMethodError(-8, "Error: cannot generate an address containing no shielded receivers.")
        return list(dict.fromkeys(types))

    def z_listreceivedbyaddress(
        self, server: str, text: Any, minconf: Any = None, as_of_height: Any = None
    ) -> list[dict[str, Any]]:
        minconf = self._minconf(server, minconf, default=1)
        address = self._validated(self._string(server, text))
        if address is None:
            raise RpcMethodError(-5, "Invalid address")
        owner = next(
            (
                owner
                for kind, data in address.receivers.items()
                if (owner := self._wallet_receivers.get((kind, data))) is not None
            ),
            None,
        )
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
        for tx, output in self._outputs_to(address.receivers):
            confirmations = self.confirmations(tx.txid)
            if confirmations < minconf:
                continue
            mined = self._mined_at.get(tx.txid)
            row: dict[str, Any] = {
                "pool": output.pool,
                "txid": tx.txid,
                "amount": _zec(output.value_zat),
                "amountZat": output.value_zat,
            }
            if output.memo is not None:
                row.update(_memo_json(output.memo))
            row.update(
                outindex=output.index,
                confirmations=confirmations,
                blockheight=mined[0] if mined else 0,
                blockindex=mined[1] if mined else -1,
                blocktime=self.blocks[self.chain[mined[0]]].time if mined else tx.time,
                change=False,
            )
            rows.append(row)
        return rows

    def z_listunspent(
        self,
        server: str,
        minconf: Any = None,
        maxconf: Any = None,
        include_watchonly: Any = None,
        addresses: Any = None,
        as_of_height: Any = None,
    ) -> list[dict[str, Any]]:
        minconf = self._minconf(server, minconf, default=1)
        maxconf = 9_999_999 if maxconf is None else self._int(server, maxconf)
        if maxconf < minconf:
            raise RpcMethodError(
                -8, "Maximum number of confirmations must be greater or equal to the minimum number of confirmations"
            )
        filters = [self._unspent_filter(server, text) for text in self._list(server, addresses or [])]
        rows = []
        for tx, output, owner in self._wallet_outputs():
            if server == ZCASHD and output.pool == "transparent":
                continue  # zcashd lists transparent outputs with listunspent
            confirmations = self.confirmations(tx.txid)
            if not minconf <= confirmations <= maxconf:
                continue
            if filters and not any(matches(output, owner) for matches in filters):
                continue
            rows.append(self._unspent_row(server, tx, output, owner, confirmations))
        return rows

    def _unspent_filter(self, server: str, text: Any) -> Callable[[Output, WalletAddress], bool]:
        address = self._validated(text)
        if address is None:
            if server == ZCASHD:
                raise RpcMethodError(-5, f"Invalid parameter, address is not a valid zaddr or taddr: {text}")
            raise RpcMethodError(-8, "Not a valid Zcash address", text)
        if server == ZALLET:
            # Zallet filters at the account level: any address of an account selects all of its outputs.
            accounts = {
                owner.account.uuid
                for kind, data in address.receivers.items()
                if (owner := self._wallet_receivers.get((kind, data))) is not None
            }
            return lambda output, owner: owner.account.uuid in accounts
        wanted = set(address.receivers.items())
        return lambda output, owner: (output.receiver_kind, output.receiver) in wanted

    def _unspent_row(
        self, server: str, tx: Transaction, output: Output, owner: WalletAddress, confirmations: int
    ) -> dict[str, Any]:
        if server == ZCASHD:
            row: dict[str, Any] = {
                "txid": tx.txid,
                "pool": output.pool,
                "outindex": output.index,
                "confirmations": confirmations,
                "spendable": True,
                "account": owner.account.number,
                "address": owner.text,
                "amount": _zec(output.value_zat),
                "amountZat": output.value_zat,
            }
            if output.memo is not None:
                row.update(_memo_json(output.memo))
            row["change"] = False
            return row
        if output.receiver_kind == "sapling":
            received_at = encode_sapling(self.network, output.receiver)
        elif output.receiver_kind == "orchard":
            received_at = encode_unified(self.network, {"orchard": output.receiver})
        else:
            received_at = encode_transparent(self.network, output.receiver_kind, output.receiver)
        row = {
            "txid": tx.txid,
            "pool": output.pool,
            "outindex": output.index,
            "confirmations": confirmations,
            "is_watch_only": False,
            "address": received_at,
            "account_uuid": owner.account.uuid,
            "walletInternal": False,
            "value": _zec(output.value_zat),
            "valueZat": output.value_zat,
        }
        if output.memo is not None:
            row.update(_memo_json(output.memo))
        return row

    def z_sendmany(
        self, server: str, from_address: Any, amounts: Any, minconf: Any = None, fee: Any = None,
        privacy_policy: Any = None,
    ) -> str:
        if self._string(server, from_address) != "ANY_TADDR":
            raise RpcMethodError(-8, "Invalid from address: this regtest wallet only sends from its faucet, ANY_TADDR")
        self._minconf(server, minconf, default=1)
        recipients = self._list(server, amounts)
        if not recipients:
            raise RpcMethodError(-8, "Invalid parameter, amounts array is empty.")
        seen: set[str] = set()
        outputs = [
            self._recipient_output(server, index, recipient, seen) for index, recipient in enumerate(recipients)
        ]
        fee_zat = (
            self._amount_zat(fee) if fee is not None
            else ZIP317_MARGINAL_FEE_ZAT * max(ZIP317_GRACE_ACTIONS, len(outputs))
        )
        now = int(time.time())
        operation = Operation(
            opid=f"opid-{uuid.uuid4()}",
            creation_time=now,
            params={
                "fromaddress": from_address,
                "amounts": recipients,
                "minconf": 1 if minconf is None else minconf,
                "fee": fee,
            },
        )
        needed = sum(output.value_zat for output in outputs) + fee_zat
        if needed > self.faucet_zat:
            operation.error = {
                "code": -6,
                "message": f"Insufficient funds: have {_zec(self.faucet_zat)}, need {_zec(needed)}",
            }
        else:
            self.faucet_zat -= needed
            txid = hashlib.sha256(self._seed + f"tx:{self._next_sequence()}".encode()).hexdigest()
            self.transactions[txid] = Transaction(txid, now, outputs, fee_zat, self._next_sequence())
            operation.result = {"txid": txid}
        self.operations[operation.opid] = operation
        return operation.opid

    def _recipient_output(self, server: str, index: int, recipient: Any, seen: set[str]) -> Output:
        if not isinstance(recipient, dict):
            raise self._type_error(server, "an object")
        unknown = set(recipient) - {"address", "amount", "memo"}
        if unknown:
            raise RpcMethodError(-8, f"Invalid parameter, unknown key: {sorted(unknown)[0]}")
        text = recipient.get("address")
        address = self._validated(text)
        if address is None or address.kind in ("sprout", "tex"):
            raise RpcMethodError(-5, f"Invalid parameter, unknown address format: {text}")
        if address.text in seen:
            raise RpcMethodError(-8, f"Invalid parameter, duplicated address: {text}")
        seen.add(address.text)
        value_zat = self._amount_zat(recipient.get("amount"))
        if value_zat <= 0:
            raise RpcMethodError(-8, "Invalid parameter, amount must be positive")
        kind = next(kind for kind in ("orchard", "sapling", "p2pkh", "p2sh") if kind in address.receivers)
        memo_hex = recipient.get("memo")
        memo: bytes | None = None
        if kind in ("p2pkh", "p2sh"):
            if memo_hex is not None:
                raise RpcMethodError(-8, "Invalid parameter, memos cannot be sent to transparent addresses.")
        else:
            memo = NO_MEMO if memo_hex is None else self._memo_bytes(memo_hex)
        return Output(index, address.text, kind, address.receivers[kind], value_zat, memo)

    @staticmethod
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

    def z_getoperationstatus(self, server: str, opids: Any = None) -> list[dict[str, Any]]:
        wanted = list(self.operations) if opids is None else self._list(server, opids)
        return [self.operations[opid].as_json() for opid in wanted if opid in self.operations]

    def z_getoperationresult(self, server: str, opids: Any = None) -> list[dict[str, Any]]:
        statuses = self.z_getoperationstatus(server, opids)
        for status in statuses:
            del self.operations[status["id"]]  # finished operations are removed once their result is read
        return statuses

    def getwalletstatus(self, server: str) -> dict[str, Any]:
        """Zallet's shape; `fully_synced_height` is omitted while the wallet has no account to sync."""
        tip = {"blockhash": self.tip.hash, "height": self.height}
        status: dict[str, Any] = {"node_tip": tip, "wallet_tip": tip}
        if self.accounts:
            status["fully_synced_height"] = self.height if self.sync_lock_code is None else self.height - 1
        if self.sync_lock_code is not None:
            status["sync_work_remaining"] = {"unscanned_blocks": 1, "progress": {"numerator": 0, "denominator": 1}}
        return status

    def regtest_setwalletsyncing(self, server: str, code: Any, calls: Any = None) -> None:
        """Test control (not a real RPC): wallet methods answer `code` until cleared with null or 0, or for the
        next `calls` wallet calls."""
        if code in (None, 0):
            self.sync_lock_code = self.sync_lock_calls = None
            return
        if code not in SYNC_LOCK_MESSAGES:
            raise RpcMethodError(-8, f"code must be one of {sorted(SYNC_LOCK_MESSAGES)} or null")
        self.sync_lock_code = code
        self.sync_lock_calls = None if calls is None else self._int(server, calls)

    # --- dispatch ------------------------------------------------------------------------------------------

    def _method_table(self) -> dict[str, _Method]:
        def method(handler: Callable[..., Any], names: tuple[str, ...], required: int, servers: frozenset[str],
                   wallet: bool = False, zcashd_names: tuple[str, ...] | None = None) -> _Method:
            return _Method(handler, names, required, servers, wallet, zcashd_names)

        return {
            "getblockchaininfo": method(self.getblockchaininfo, (), 0, CHAIN_SERVERS),
            "getblockcount": method(self.getblockcount, (), 0, CHAIN_SERVERS),
            "getbestblockhash": method(self.getbestblockhash, (), 0, CHAIN_SERVERS),
            "getblockhash": method(self.getblockhash, ("height",), 1, CHAIN_SERVERS),
            "getblock": method(self.getblock, ("hash_or_height", "verbosity"), 1, CHAIN_SERVERS),
            "getblockheader": method(self.getblockheader, ("hash", "verbose"), 1, CHAIN_SERVERS),
            "generate": method(self.generate, ("num_blocks",), 1, CHAIN_SERVERS),
            "invalidateblock": method(self.invalidateblock, ("block_hash",), 1, CHAIN_SERVERS),
            "reconsiderblock": method(self.reconsiderblock, ("block_hash",), 1, CHAIN_SERVERS),
            "getrawmempool": method(self.getrawmempool, ("verbose",), 0, CHAIN_SERVERS),
            "getaddressbalance": method(self.getaddressbalance, ("address_strings",), 1, CHAIN_SERVERS),
            "z_validateaddress": method(self.z_validateaddress, ("address",), 1, CHAIN_SERVERS),
            "validateaddress": method(self.validateaddress, ("address",), 1, ALL_SERVERS),
            "getrawtransaction": method(self.getrawtransaction, ("txid", "verbose", "blockhash"), 1, ALL_SERVERS),
            "z_getnewaccount": method(
                self.z_getnewaccount, ("account_name", "seedfp"), 0, WALLET_SERVERS, True, zcashd_names=()
            ),
            "z_listaccounts": method(
                self.z_listaccounts, ("include_addresses",), 0, WALLET_SERVERS, True, zcashd_names=()
            ),
            "z_getaddressforaccount": method(
                self.z_getaddressforaccount, ("account", "receiver_types", "diversifier_index"), 1,
                WALLET_SERVERS, True,
            ),
            "z_listreceivedbyaddress": method(
                self.z_listreceivedbyaddress, ("address", "minconf", "as_of_height"), 1, frozenset({ZCASHD}), True
            ),
            "z_listunspent": method(
                self.z_listunspent, ("minconf", "maxconf", "include_watchonly", "addresses", "as_of_height"), 0,
                WALLET_SERVERS, True,
            ),
            "z_sendmany": method(
                self.z_sendmany, ("fromaddress", "amounts", "minconf", "fee", "privacy_policy"), 2,
                WALLET_SERVERS, True,
            ),
            "z_getoperationstatus": method(self.z_getoperationstatus, ("operationid",), 0, WALLET_SERVERS, True),
            "z_getoperationresult": method(self.z_getoperationresult, ("operationid",), 0, WALLET_SERVERS, True),
            "getwalletstatus": method(self.getwalletstatus, (), 0, frozenset({ZALLET})),
            "regtest_setwalletsyncing": method(self.regtest_setwalletsyncing, ("code", "calls"), 1, WALLET_SERVERS),
        }

    def execute(self, server: str, name: Any, params: Any) -> Any:
        """Run one call as `server` would; raise RpcMethodError for a JSON-RPC error."""
        method = self.methods.get(name) if isinstance(name, str) else None
        if method is None or server not in method.servers:
            raise RpcMethodError(-32601, "Method not found")
        positional = self._positional(server, method, params)
        names = method.zcashd_names if server == ZCASHD and method.zcashd_names is not None else method.names
        if len(positional) < method.required or len(positional) > len(names):
            if server == ZCASHD:
                bound = "Not enough" if len(positional) < method.required else "Too many"
                raise RpcMethodError(-32602, f"{bound} parameters for method `{name}`")
            raise RpcMethodError(-32602, "Invalid params", f"{len(positional)} parameters given")
        if method.wallet:
            self._check_sync_lock()
        return method.handler(server, *positional)

    @staticmethod
    def _positional(server: str, method: _Method, params: Any) -> list[Any]:
        if params is None:
            return []
        if isinstance(params, list):
            return params
        if server != ZCASHD and isinstance(params, dict):  # jsonrpsee accepts named params
            unknown = set(params) - set(method.names)
            if unknown:
                raise RpcMethodError(-32602, "Invalid params", f"unknown parameter {sorted(unknown)[0]}")
            given = [params.get(name) for name in method.names]
            while given and given[-1] is None:
                given.pop()
            return given
        raise RpcMethodError(-32600, "Params must be an array")


# --- HTTP --------------------------------------------------------------------------------------------------

NODE_KEY = web.AppKey("zcash_regtest_node", RegtestZcash)
_JSONRPSEE_CONTENT_TYPE = "application/json; charset=utf-8"


def _http_status(server: str, code: int) -> int:
    if server == ZEBRAD:
        return 400 if code in (-32700, -32600) else 200
    return {-32600: 400, -32601: 404}.get(code, 500)


def _reply(server: str, request: Any, result: Any = None, error: RpcMethodError | None = None) -> dict[str, Any]:
    request_id = request.get("id") if isinstance(request, dict) else None
    if server != ZCASHD and isinstance(request, dict) and request.get("jsonrpc") == "2.0":
        if error is not None:
            return {"jsonrpc": "2.0", "error": error.as_json(), "id": request_id}
        return {"jsonrpc": "2.0", "result": result, "id": request_id}
    # bitcoind style, which jsonrpsee's compatibility layer also uses for 1.0 requests
    return {"result": result, "error": None if error is None else error.as_json(), "id": request_id}


def _handle_one(node: RegtestZcash, server: str, request: Any) -> tuple[dict[str, Any], RpcMethodError | None]:
    try:
        if not isinstance(request, dict):
            raise RpcMethodError(-32600, "Invalid Request object")
        if not isinstance(request.get("method"), str):
            raise RpcMethodError(-32600, "Method must be a string")
        result = node.execute(server, request["method"], request.get("params"))
    except RpcMethodError as error:
        return _reply(server, request, error=error), error
    return _reply(server, request, result=result), None


def _authorized(request: web.Request, rpcuser: str, rpcpassword: str) -> bool:
    header = request.headers.get("Authorization", "")
    try:
        credentials = BasicAuth.decode(header)
    except ValueError:
        return False
    return secrets.compare_digest(credentials.login.encode(), rpcuser.encode()) and secrets.compare_digest(
        credentials.password.encode(), rpcpassword.encode()
    )


def _json_response(server: str, body: Any, status: int) -> web.Response:
    if server == ZCASHD:
        return web.Response(
            status=status, body=(encode_json(body) + "\n").encode(), headers={"Content-Type": "application/json"}
        )
    return web.Response(
        status=status, body=encode_json(body).encode(), headers={"Content-Type": _JSONRPSEE_CONTENT_TYPE}
    )


def _endpoint(server: str, rpcuser: str, rpcpassword: str, accept_batches: bool) -> Callable[..., Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not _authorized(request, rpcuser, rpcpassword):
            if server == ZEBRAD:
                # zebrad closes the connection without any reply (zebra#9190).
                assert request.transport is not None
                request.transport.close()
                raise web.HTTPUnauthorized()
            await asyncio.sleep(AUTH_FAILURE_DELAY_SECONDS)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        node = request.app[NODE_KEY]
        try:
            payload = decode_json(await request.read())
        except (ValueError, UnicodeDecodeError):
            error = RpcMethodError(-32700, "Parse error")
            return _json_response(server, _reply(server, None, error=error), _http_status(server, error.code))
        if isinstance(payload, list):
            if not accept_batches or not payload:
                error = (
                    RpcMethodError(-32005, "Batched requests are not supported by this server")
                    if not accept_batches
                    else RpcMethodError(-32600, "Invalid Request object")
                )
                return _json_response(server, _reply(server, None, error=error), _http_status(server, error.code))
            replies = [_handle_one(node, server, item)[0] for item in payload]
            return _json_response(server, replies, 200)
        reply, error = _handle_one(node, server, payload)
        return _json_response(server, reply, 200 if error is None else _http_status(server, error.code))

    return handle


def create_app(
    *,
    rpcuser: str,
    rpcpassword: str,
    personality: str = ZCASHD,
    faucet_zat: int = DEFAULT_FAUCET_ZAT,
    address_index: bool = True,
    accept_batches: bool = True,
) -> web.Application:
    """The stand-in as an aiohttp application: zcashd at `/`, or Zallet at `/` and zebrad at `/node`.

    `address_index=False` is zcashd without `-insightexplorer` (getaddressbalance disabled); `accept_batches=False`
    makes every server refuse JSON-RPC batches, as a jsonrpsee server configured without them does.
    """
    app = web.Application()
    app[NODE_KEY] = RegtestZcash(personality=personality, faucet_zat=faucet_zat, address_index=address_index)
    wallet_server = ZCASHD if personality == ZCASHD else ZALLET
    app.router.add_post("/", _endpoint(wallet_server, rpcuser, rpcpassword, accept_batches))
    if personality == ZALLET:
        app.router.add_post("/node", _endpoint(ZEBRAD, rpcuser, rpcpassword, accept_batches))
    return app


@dataclass
class RunningNode:
    """A started stand-in: `url` is the wallet's RPC URL, `node_url` the chain node's (the same for zcashd), and
    the credentials it was started with."""

    url: str
    node_url: str
    app: web.Application
    runner: web.AppRunner
    rpcuser: str
    rpcpassword: str

    @property
    def node(self) -> RegtestZcash:
        return self.app[NODE_KEY]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_zcash_regtest(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    rpcuser: str,
    rpcpassword: str,
    personality: str = ZCASHD,
    faucet_zat: int = DEFAULT_FAUCET_ZAT,
    address_index: bool = True,
    accept_batches: bool = True,
) -> RunningNode:
    """Serve the stand-in on `host:port` (port 0: a free port)."""
    app = create_app(
        rpcuser=rpcuser, rpcpassword=rpcpassword, personality=personality, faucet_zat=faucet_zat,
        address_index=address_index, accept_batches=accept_batches,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    base = f"http://{bound_host}:{bound_port}"
    node_url = f"{base}/node" if personality == ZALLET else f"{base}/"
    return RunningNode(f"{base}/", node_url, app, runner, rpcuser, rpcpassword)
