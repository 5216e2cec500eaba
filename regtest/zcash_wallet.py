"""The stand-in's wallet: accounts, deterministic address derivation, the notes the wallet received and spent, and
what each transaction did to each account (for Zallet's `z_listtransactions`).

Everything a watcher or an address request touches is indexed, so no call grows with the number of addresses
issued or payments received: the next diversifier index comes from per-account counters, receivers map straight to
their address, and unspent notes are kept apart from spent ones.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from chains.zcash_address import ZcashAddress, ZcashNetwork, encode_sapling, encode_transparent, encode_unified
from regtest.zcash_chain import Chain, Receiver
from regtest.zcash_types import (
    TRANSPARENT_GAP_LIMIT,
    TX_EXPIRY_DELTA,
    ZCASHD,
    Account,
    Note,
    Output,
    RpcMethodError,
    Transaction,
    WalletAddress,
)

NoteKey = tuple[str, int]  # (txid, output index)


@dataclass
class AccountEffect:
    """What one transaction did to one account."""

    balance_delta_zat: int = 0
    received_note_count: int = 0  # outputs it received, change excluded
    sent_note_count: int = 0  # outputs it sent to anyone but itself


class Wallet:
    def __init__(self, chain: Chain, network: ZcashNetwork, seed: bytes, personality: str, faucet_zat: int) -> None:
        self.chain = chain
        self.network = network
        self._seed = seed
        self.personality = personality
        self.faucet_zat = faucet_zat
        self.accounts: list[Account] = []
        self._accounts_by_uuid: dict[str, Account] = {}
        self.receivers: dict[Receiver, WalletAddress] = {}
        self._internal_receivers: dict[Receiver, Account] = {}
        self.notes: dict[NoteKey, Note] = {}  # every note received, in arrival order
        self.unspent: dict[NoteKey, Note] = {}
        self._unspent_by_account: dict[str, dict[NoteKey, Note]] = {}  # account uuid -> its unspent notes
        self._unspent_by_address: dict[str, dict[NoteKey, Note]] = {}  # address text -> notes received there
        self.effects: dict[str, dict[str, AccountEffect]] = {}  # txid -> account uuid -> effect

    @property
    def seed_fingerprint(self) -> str:
        return hashlib.sha256(self._seed).hexdigest()

    # --- accounts --------------------------------------------------------------------------------------------

    def new_account(self, name: str | None) -> Account:
        account = Account(number=len(self.accounts), uuid=str(uuid.uuid4()), name=name)
        self.accounts.append(account)
        self._accounts_by_uuid[account.uuid] = account
        return account

    def forget_accounts(self) -> None:
        """Test hook: the wallet comes back empty, as a node restored without its wallet file would."""
        self.accounts.clear()
        self._accounts_by_uuid.clear()

    def account_by_number(self, number: int) -> Account | None:
        return self.accounts[number] if 0 <= number < len(self.accounts) else None

    def account_by_uuid(self, account_uuid: str) -> Account | None:
        return self._accounts_by_uuid.get(account_uuid)

    # --- addresses -------------------------------------------------------------------------------------------

    def address_for(self, account: Account, receiver_types: list[str], index: int | None) -> WalletAddress:
        """The address at `index` (derived on first use), or at the next free index. Asking again for an index
        with other receiver types is zcashd's and Zallet's -4."""
        if index is None:
            index = self._next_diversifier_index(account, receiver_types)
        existing = account.addresses.get(index)
        if existing is None:
            return self._derive_address(account, index, receiver_types)
        if sorted(existing.receiver_types) != sorted(receiver_types):
            raise RpcMethodError(
                -4, f"Error: address at diversifier index {index} was already generated with different receiver types."
            )
        return existing

    def owner_of(self, address: ZcashAddress) -> WalletAddress | None:
        """The wallet address that has one of `address`'s receivers."""
        for kind, data in address.receivers.items():
            owner = self.receivers.get((kind, data))
            if owner is not None:
                return owner
        return None

    def receiver_text(self, address: WalletAddress, kind: str) -> str:
        """One receiver of `address` encoded on its own, as Zallet names the address that received an output: a
        Sapling address, an Orchard-only unified address or a t-address. Cached: encoding is not cheap."""
        text = address.receiver_texts.get(kind)
        if text is None:
            data = address.receivers[kind]
            if kind == "sapling":
                text = encode_sapling(self.network, data)
            elif kind == "orchard":
                text = encode_unified(self.network, {"orchard": data})
            else:
                text = encode_transparent(self.network, kind, data)
            address.receiver_texts[kind] = text
        return text

    def internal_receiver(self, account: Account, kind: str) -> bytes:
        """The account's internal (change) receiver of `kind`; no external address contains it."""
        data = self._receiver_bytes(account, "internal", kind)
        self._internal_receivers[(kind, data)] = account
        return data

    def _receiver_bytes(self, account: Account, index: int | str, kind: str) -> bytes:
        size = 20 if kind == "p2pkh" else 43
        return hashlib.blake2b(f"{account.uuid}/{index}/{kind}".encode(), key=self._seed, digest_size=size).digest()

    def _derive_address(self, account: Account, index: int, receiver_types: list[str]) -> WalletAddress:
        receivers = {kind: self._receiver_bytes(account, index, kind) for kind in receiver_types}
        address = WalletAddress(account, index, receiver_types, receivers, encode_unified(self.network, receivers))
        account.addresses[index] = address
        account.next_index = max(account.next_index, index + 1)
        for kind, data in receivers.items():
            self.receivers[(kind, data)] = address
        if "p2pkh" in receivers:
            address.transparent_position = len(account.transparent_indices)
            account.transparent_indices.append(index)
            account.next_transparent_index = max(account.next_transparent_index, index + 1)
            if self.chain.outputs_to([("p2pkh", receivers["p2pkh"])]):
                account.last_used_transparent = address.transparent_position
        return address

    def _next_diversifier_index(self, account: Account, receiver_types: list[str]) -> int:
        if self.personality == ZCASHD:
            return account.next_index
        if "p2pkh" not in receiver_types:
            # Zallet gives shielded-only requests a time-based index, outside any transparent gap window.
            return max(int(time.time()), account.next_index)
        next_index = account.next_transparent_index
        unused_in_a_row = len(account.transparent_indices) - 1 - account.last_used_transparent
        if unused_in_a_row >= TRANSPARENT_GAP_LIMIT:
            raise RpcMethodError(
                -4,
                "Error: reached the transparent gap limit while attempting to generate a new address at index "
                f"{next_index}.",
            )
        while next_index in account.addresses:
            next_index += 1
        return next_index

    # --- transactions ----------------------------------------------------------------------------------------

    def next_expiry_height(self) -> int:
        return self.chain.height + 1 + TX_EXPIRY_DELTA

    def broadcast(self, tx: Transaction) -> None:
        """Put `tx` in the mempool and record what it does to the wallet: spent notes, received notes, effects."""
        self.chain.add_transaction(tx)
        effects: dict[str, AccountEffect] = {}
        for key in tx.spends:
            note = self._spend_note(key)
            effects.setdefault(note.account.uuid, AccountEffect()).balance_delta_zat -= note.output.value_zat
        for output in tx.outputs:
            receiver = (output.receiver_kind, output.receiver)
            address = self.receivers.get(receiver)
            account = address.account if address is not None else self._internal_receivers.get(receiver)
            if account is not None:
                self._add_note((tx.txid, output.index), Note(tx.txid, output, account, address))
                effect = effects.setdefault(account.uuid, AccountEffect())
                effect.balance_delta_zat += output.value_zat
                if not output.is_change:
                    effect.received_note_count += 1
                if address is not None and address.transparent_position is not None and output.pool == "transparent":
                    account.last_used_transparent = max(account.last_used_transparent, address.transparent_position)
            if tx.from_account is not None and (account is None or account.uuid != tx.from_account):
                effects.setdefault(tx.from_account, AccountEffect()).sent_note_count += 1
        if effects:
            self.effects[tx.txid] = effects

    def faucet_send(self, outputs: list[Output], fee_zat: int) -> str:
        """Pay `outputs` from the faucet (funds outside the wallet); returns the txid."""
        txid = self.chain.new_txid()
        tx = Transaction(
            txid, int(time.time()), tuple(outputs), fee_zat, self.chain.next_sequence(), self.next_expiry_height()
        )
        self.faucet_zat -= sum(output.value_zat for output in outputs) + fee_zat
        self.broadcast(tx)
        return txid

    def unspent_of(self, account: Account) -> Iterable[Note]:
        """The account's unspent notes in arrival order: a live view, read lazily so that a send looks only at the
        notes it takes."""
        return self._unspent_by_account.get(account.uuid, {}).values()

    def unspent_at(self, address: WalletAddress) -> Iterable[Note]:
        """The unspent notes received at `address`, in arrival order (a live view)."""
        return self._unspent_by_address.get(address.text, {}).values()

    def _add_note(self, key: NoteKey, note: Note) -> None:
        self.notes[key] = self.unspent[key] = note
        self._unspent_by_account.setdefault(note.account.uuid, {})[key] = note
        if note.address is not None:
            self._unspent_by_address.setdefault(note.address.text, {})[key] = note
            if self.personality != ZCASHD:  # Zallet's listings name the receiver: encode it now, not per listing
                self.receiver_text(note.address, note.output.receiver_kind)

    def _spend_note(self, key: NoteKey) -> Note:
        note = self.unspent.pop(key)
        del self._unspent_by_account[note.account.uuid][key]
        if note.address is not None:
            del self._unspent_by_address[note.address.text][key]
        return note
