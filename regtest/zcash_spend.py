"""Building a transaction that spends a wallet account's notes, as `z_sendmany` from a wallet address does.

What is modelled, after zcashd's `z_sendmany` help and Zallet's `payments.rs`:
- A unified `fromaddress` spends the *account's* notes in the pools of the address's shielded receivers (not only
  the notes received at that address). Notes received at `fromaddress` itself are chosen first, then the oldest;
  so sending a note's value minus the fee from the address that received it sweeps exactly that note.
- Confirmations: `minconf` (at least 1: a note needs a mined anchor); without it zcashd asks for 10, and Zallet for
  3 on its own change and 10 on notes received from others (ZIP 315).
- Fee: the ZIP 317 conventional fee, 5,000 zatoshis per logical action with at least 2, where each shielded pool
  used counts max(spends, outputs, 2) (bundles are padded) and the transparent part max(inputs, outputs); zcashd
  also takes a fixed `fee`. Change goes back to the account's internal address, in the inputs' pool.
- Privacy policy: a transparent recipient needs "recipients" revealed, crossing shielded pools needs "amounts".

Not modelled: spending transparent funds of a wallet account, dust rules, note locking between operations.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from chains.zcash_address import ZcashAddress
from regtest.zcash_types import (
    NO_MEMO,
    SHIELDED_POOLS,
    TRANSPARENT_KINDS,
    ZCASHD,
    ZIP317_GRACE_ACTIONS,
    ZIP317_MARGINAL_FEE_ZAT,
    Note,
    Output,
    RpcMethodError,
    Transaction,
    WalletAddress,
    zec,
)
from regtest.zcash_wallet import Wallet

ZCASHD_DEFAULT_MINCONF = 10  # DEFAULT_NOTE_CONFIRMATIONS
ZALLET_TRUSTED_MINCONF = 3  # ZIP 315, for the wallet's own change
ZALLET_UNTRUSTED_MINCONF = 10  # ZIP 315, for notes received from others

# What each privacy policy allows to be revealed (zcashd `z_sendmany` help; Zallet's PrivacyPolicy).
PRIVACY_POLICIES: dict[str, frozenset[str]] = {
    "FullPrivacy": frozenset(),
    "AllowRevealedAmounts": frozenset({"amounts"}),
    "AllowRevealedRecipients": frozenset({"amounts", "recipients"}),
    "AllowRevealedSenders": frozenset({"amounts", "senders"}),
    "AllowFullyTransparent": frozenset({"amounts", "recipients", "senders"}),
    "AllowLinkingAccountAddresses": frozenset({"amounts", "senders", "linking"}),
    "NoPrivacy": frozenset({"amounts", "recipients", "senders", "linking"}),
}
_WEAKEN = (
    "THIS MAY AFFECT YOUR PRIVACY. Resubmit with the `privacyPolicy` parameter set to `{policy}` or weaker if you "
    "wish to allow this transaction to proceed anyway."
)
TRANSPARENT_RECIPIENT_REFUSED = (
    "This transaction would have transparent recipients, which is not enabled by default because it will publicly "
    "reveal transaction recipients and amounts. " + _WEAKEN.format(policy="AllowRevealedRecipients")
)
CROSSING_POOLS_REFUSED = (
    "Could not send to a shielded receiver of a unified address without spending funds from a different pool, "
    "which would reveal transaction amounts. " + _WEAKEN.format(policy="AllowRevealedAmounts")
)


@dataclass(frozen=True)
class Recipient:
    address: ZcashAddress
    value_zat: int
    memo: bytes | None  # 512 bytes; None when the request had no memo


@dataclass(frozen=True)
class SendRequest:
    source: WalletAddress
    pools: tuple[str, ...]  # the shielded pools `source` may spend from
    recipients: tuple[Recipient, ...]
    minconf: int | None  # None: the personality's default
    fee_zat: int | None  # None: the ZIP 317 conventional fee
    revealable: frozenset[str]  # from the privacy policy


def choose_receiver(address: ZcashAddress, source_pools: set[str]) -> str:
    """The receiver a payment to `address` goes to: a shielded one in a pool the sender spends from (so no value
    crosses pools), else the most private one the address has."""
    for kind in SHIELDED_POOLS:
        if kind in address.receivers and kind in source_pools:
            return kind
    return next(kind for kind in (*SHIELDED_POOLS, *TRANSPARENT_KINDS) if kind in address.receivers)


def recipient_output(index: int, recipient: Recipient, kind: str) -> Output:
    memo = None if kind in TRANSPARENT_KINDS else (recipient.memo or NO_MEMO)
    address = recipient.address
    return Output(index, address.text, kind, address.receivers[kind], recipient.value_zat, memo)


def zip317_fee(inputs: Counter[str], outputs: Counter[str]) -> int:
    """The conventional fee for a transaction with these inputs and outputs per pool."""
    actions = max(inputs["transparent"], outputs["transparent"])
    for pool in SHIELDED_POOLS:
        if inputs[pool] or outputs[pool]:
            actions += max(inputs[pool], outputs[pool], 2)
    return ZIP317_MARGINAL_FEE_ZAT * max(ZIP317_GRACE_ACTIONS, actions)


def build_send(wallet: Wallet, request: SendRequest, txid: str, sequence: int, now: int) -> Transaction:
    """The transaction `request` makes, or RpcMethodError (insufficient funds, privacy policy)."""
    account = request.source.account
    outputs = [
        recipient_output(index, recipient, choose_receiver(recipient.address, set(request.pools)))
        for index, recipient in enumerate(request.recipients)
    ]
    if any(output.pool == "transparent" for output in outputs) and "recipients" not in request.revealable:
        raise RpcMethodError(-8, TRANSPARENT_RECIPIENT_REFUSED)
    selected, fee_zat, change_zat = _select(wallet, request, outputs)
    input_pools = {note.output.pool for note in selected}
    shielded_out = {output.pool for output in outputs} - {"transparent"}
    if (len(input_pools) > 1 or shielded_out - input_pools) and "amounts" not in request.revealable:
        raise RpcMethodError(-8, CROSSING_POOLS_REFUSED)
    if change_zat:
        pool = _change_pool(input_pools)
        receiver = wallet.internal_receiver(account, pool)
        outputs.append(Output(len(outputs), None, pool, receiver, change_zat, NO_MEMO, is_change=True))
    spends = tuple((note.txid, note.output.index) for note in selected)
    return Transaction(txid, now, tuple(outputs), fee_zat, sequence, wallet.next_expiry_height(), spends, account.uuid)


def _select(wallet: Wallet, request: SendRequest, outputs: list[Output]) -> tuple[list[Note], int, int]:
    """Greedy: take spendable notes in order until they pay the outputs and the fee exactly, or leave change;
    returns (notes, fee, change). Only the notes taken are looked at, unless the funds do not suffice."""
    total_out = sum(output.value_zat for output in outputs)
    output_pools = _pools(outputs)
    selected: list[Note] = []
    inputs: Counter[str] = Counter()
    total_in = 0
    for note in _spendable_notes(wallet, request):
        selected.append(note)
        inputs[note.output.pool] += 1
        total_in += note.output.value_zat
        fee_exact = _fee(request, inputs, output_pools)
        if total_in == total_out + fee_exact:
            return selected, fee_exact, 0
        fee_with_change = _fee(request, inputs, output_pools + Counter({_change_pool(set(inputs)): 1}))
        if total_in > total_out + fee_with_change:
            return selected, fee_with_change, total_in - total_out - fee_with_change
    raise _insufficient(wallet, total_in, total_out + _fee(request, inputs, output_pools))


def _spendable_notes(wallet: Wallet, request: SendRequest) -> Iterator[Note]:
    """The account's unspent notes in the allowed pools with enough confirmations: those received at the source
    address first, then the others, oldest first."""
    at_source = wallet.unspent_at(request.source)
    others = (note for note in wallet.unspent_of(request.source.account) if note.address is not request.source)
    for note in itertools.chain(at_source, others):
        if note.output.pool in request.pools and wallet.chain.confirmations(note.txid) >= _required_confirmations(
            wallet, request, note
        ):
            yield note


def _required_confirmations(wallet: Wallet, request: SendRequest, note: Note) -> int:
    if request.minconf is not None:
        return max(request.minconf, 1)
    if wallet.personality == ZCASHD:
        return ZCASHD_DEFAULT_MINCONF
    trusted = note.output.is_change or wallet.chain.transactions[note.txid].from_account == note.account.uuid
    return ZALLET_TRUSTED_MINCONF if trusted else ZALLET_UNTRUSTED_MINCONF


def _change_pool(input_pools: set[str]) -> str:
    return next(pool for pool in SHIELDED_POOLS if pool in input_pools)


def _pools(outputs: list[Output]) -> Counter[str]:
    return Counter(output.pool for output in outputs)


def _fee(request: SendRequest, inputs: Counter[str], outputs: Counter[str]) -> int:
    return request.fee_zat if request.fee_zat is not None else zip317_fee(inputs, outputs)


def _insufficient(wallet: Wallet, have_zat: int, need_zat: int) -> RpcMethodError:
    if wallet.personality == ZCASHD:
        return RpcMethodError(-8, f"Insufficient funds: have {zec(have_zat)}, need {zec(need_zat)}.")
    return RpcMethodError(
        -4, f"Failed to propose transaction: Insufficient balance (have {have_zat}, need {need_zat} including fee)"
    )

