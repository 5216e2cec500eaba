"""Constants, errors and value objects shared by the Zcash regtest stand-in's chain, wallet and RPC modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZATOSHI_PER_ZEC = 100_000_000
DEFAULT_FAUCET_ZAT = 10_000 * ZATOSHI_PER_ZEC
MAX_MONEY_ZAT = 21_000_000 * ZATOSHI_PER_ZEC
MEMO_SIZE = 512
NO_MEMO = b"\xf6" + bytes(MEMO_SIZE - 1)
TRANSPARENT_GAP_LIMIT = 10  # Zallet's default external gap limit (zcash_keys gap_limits.rs)
MAX_DIVERSIFIER_INDEX = 2**88 - 1
ZIP317_MARGINAL_FEE_ZAT = 5_000
ZIP317_GRACE_ACTIONS = 2
TX_EXPIRY_DELTA = 40  # blocks after the next one during which a new transaction may be mined (zcashd, Zallet)
CONSENSUS_BRANCH_ID = "c8e71055"  # NU6

ZCASHD = "zcashd"
ZALLET = "zallet"
ZEBRAD = "zebrad"
PERSONALITIES = (ZCASHD, ZALLET)

TRANSPARENT_KINDS = ("p2pkh", "p2sh")
SHIELDED_POOLS = ("orchard", "sapling")  # in order of preference as a receiver


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


class SendInterrupted(Exception):
    """Raised by `z_sendmany` when the `regtest_failnextsend` hook says the reply must never arrive: the HTTP layer
    then holds the request open ("timeout") or drops the connection ("crash_after_send")."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.mode = mode


@dataclass
class Block:
    hash: str
    height: int
    parent: str | None
    time: int
    sequence: int  # arrival order, to prefer the first-seen branch between branches of equal height
    txids: list[str]


def pool_of(receiver_kind: str) -> str:
    return "transparent" if receiver_kind in TRANSPARENT_KINDS else receiver_kind


@dataclass(frozen=True)
class Output:
    """One transaction output. `index` is its position in the transaction (recipients first, in the order of the
    `z_sendmany` amounts, then change)."""

    index: int
    address: str | None  # the address the sender used; None for change to the sender's internal address
    receiver_kind: str  # "p2pkh", "p2sh", "sapling" or "orchard": the receiver the output was sent to
    receiver: bytes
    value_zat: int
    memo: bytes | None  # 512 bytes for shielded outputs, None for transparent ones
    is_change: bool = False

    @property
    def pool(self) -> str:
        return pool_of(self.receiver_kind)


@dataclass(frozen=True)
class Transaction:
    txid: str
    time: int
    outputs: tuple[Output, ...]
    fee_zat: int
    sequence: int
    expiry_height: int
    spends: tuple[tuple[str, int], ...] = ()  # (txid, output index) of the wallet notes it spends
    from_account: str | None = None  # uuid of the wallet account that sent it; None for the faucet


@dataclass
class Account:
    number: int  # zcashd account number, Zallet's ZIP 32 account index
    uuid: str
    name: str | None
    addresses: dict[int, WalletAddress] = field(default_factory=dict)
    # Allocation state, so that choosing the next diversifier index never scans the addresses or the chain:
    next_index: int = 0  # one past the highest index issued
    transparent_indices: list[int] = field(default_factory=list)  # indices with a p2pkh receiver, in issue order
    next_transparent_index: int = 0  # one past the highest of them
    last_used_transparent: int = -1  # position in transparent_indices of the last one that received funds


@dataclass
class WalletAddress:
    account: Account
    diversifier_index: int
    receiver_types: list[str]
    receivers: dict[str, bytes]
    text: str
    transparent_position: int | None = None  # its position in account.transparent_indices
    receiver_texts: dict[str, str] = field(default_factory=dict)  # filled lazily: one receiver's own encoding


@dataclass
class Note:
    """An output received by a wallet account (at one of its addresses or, for change, its internal address)."""

    txid: str
    output: Output
    account: Account
    address: WalletAddress | None  # None: received at the account's internal address


def zec(zat: int) -> Decimal:
    """Zatoshis as a ZEC amount with 8 decimals (a JSON number)."""
    return Decimal(zat).scaleb(-8).quantize(Decimal("0.00000001"))


def memo_text(memo: bytes) -> str | None:
    """The memo as text when it is a text memo (ZIP 302: first byte <= 0xF4, valid UTF-8 once the zero padding is
    stripped), else None."""
    if memo[0] > 0xF4:
        return None
    try:
        return memo.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return None


def memo_json(memo: bytes) -> dict[str, str]:
    """zcashd's `memo` (hex of all 512 bytes) and, for a text memo, `memoStr`."""
    fields = {"memo": memo.hex()}
    text = memo_text(memo)
    if text is not None:
        fields["memoStr"] = text
    return fields


def zallet_memo(memo: bytes | None) -> str | None:
    """How Zallet's `z_listtransactions` renders a memo: null when empty or absent, the text of a text memo, the hex
    of the 511 bytes after 0xFF for an arbitrary-data memo, the hex of all 512 bytes otherwise."""
    if memo is None or memo == NO_MEMO:
        return None
    text = memo_text(memo)
    if text is not None:
        return text
    return memo[1:].hex() if memo[0] == 0xFF else memo.hex()


def script_pubkey(kind: str, hash20: bytes) -> str:
    if kind == "p2pkh":
        return f"76a914{hash20.hex()}88ac"
    return f"a914{hash20.hex()}87"
