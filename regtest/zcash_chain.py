"""The stand-in's chain: a tree of blocks whose best valid branch is the active chain, the transactions, and the
mempool (transactions in no active block and not expired).

Costs stay flat as the chain grows: mining extends the active chain in place (work proportional to the block's own
transactions), outputs are indexed by receiver, and only `invalidateblock` / `reconsiderblock` walk the whole tree.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from regtest.zcash_types import Block, Output, Transaction

Receiver = tuple[str, bytes]  # (receiver kind, receiver bytes)


class Chain:
    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._sequence = 0
        self.blocks: dict[str, Block] = {}  # in arrival order, so a parent always comes before its children
        self.invalid_blocks: set[str] = set()
        self.active: list[str] = []  # block hashes of the active chain, by height
        self.transactions: dict[str, Transaction] = {}
        self._mined_at: dict[str, tuple[int, int]] = {}  # txid -> (height, position in block) on the active chain
        self._mempool: dict[str, Transaction] = {}  # in arrival order
        self._expired: dict[str, Transaction] = {}  # evicted from the mempool unmined, in arrival order
        self._outputs_by_receiver: dict[Receiver, list[tuple[Transaction, Output]]] = {}
        self._add_block(parent=None, txids=[])

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def new_txid(self) -> str:
        return hashlib.sha256(self._seed + f"tx:{self.next_sequence()}".encode()).hexdigest()

    # --- reading ---------------------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return len(self.active) - 1

    @property
    def tip(self) -> Block:
        return self.blocks[self.active[-1]]

    def block_at(self, height: int) -> Block:
        return self.blocks[self.active[height]]

    def mempool(self) -> list[Transaction]:
        return list(self._mempool.values())

    def unmined(self) -> list[Transaction]:
        """Transactions in no active block: the mempool, then those that expired there."""
        return [*self._mempool.values(), *self._expired.values()]

    def mined_at(self, txid: str) -> tuple[int, int] | None:
        """(height, position in the block; 0 is the coinbase) on the active chain, or None."""
        return self._mined_at.get(txid)

    def confirmations(self, txid: str) -> int:
        mined = self._mined_at.get(txid)
        return 0 if mined is None else self.height - mined[0] + 1

    def block_confirmations(self, block: Block) -> int:
        """-1 for a block off the active chain, as zcashd and zebrad say."""
        return self.height - block.height + 1 if self.is_active(block) else -1

    def is_active(self, block: Block) -> bool:
        return block.height < len(self.active) and self.active[block.height] == block.hash

    def is_expired(self, tx: Transaction) -> bool:
        """Too late to be mined: the next block would be above its expiry height."""
        return tx.txid not in self._mined_at and self.height + 1 > tx.expiry_height

    def outputs_to(self, receivers: Iterable[Receiver]) -> list[tuple[Transaction, Output]]:
        """Every output paid to one of `receivers`, mined or not, in arrival order."""
        found = [pair for receiver in receivers for pair in self._outputs_by_receiver.get(receiver, ())]
        return sorted(found, key=lambda pair: (pair[0].sequence, pair[1].index))

    # --- changing --------------------------------------------------------------------------------------------

    def add_transaction(self, tx: Transaction) -> None:
        self.transactions[tx.txid] = tx
        self._mempool[tx.txid] = tx
        for output in tx.outputs:
            self._outputs_by_receiver.setdefault((output.receiver_kind, output.receiver), []).append((tx, output))

    def mine(self, count: int) -> list[str]:
        """Mine `count` blocks on the tip; the first takes every mempool transaction still allowed at its height."""
        hashes = []
        for _ in range(count):
            next_height = self.height + 1
            txids = [tx.txid for tx in self._mempool.values() if tx.expiry_height >= next_height]
            hashes.append(self._add_block(parent=self.tip.hash, txids=txids).hash)
        return hashes

    def invalidate(self, block: Block) -> None:
        self.invalid_blocks.add(block.hash)
        self._select_best_chain()

    def reconsider(self, block: Block) -> None:
        """Clear the invalid mark from `block`, its ancestors and its descendants."""
        descendants = {block.hash}
        for other in self.blocks.values():  # parents come first, so one pass finds every descendant
            if other.parent in descendants:
                descendants.add(other.hash)
        self.invalid_blocks -= descendants
        current: str | None = block.hash
        while current is not None:
            self.invalid_blocks.discard(current)
            current = self.blocks[current].parent
        self._select_best_chain()

    def _add_block(self, parent: str | None, txids: list[str]) -> Block:
        height = 0 if parent is None else self.blocks[parent].height + 1
        sequence = self.next_sequence()
        block_hash = hashlib.sha256(self._seed + f"block:{parent}:{height}:{sequence}".encode()).hexdigest()
        previous_time = self.blocks[parent].time if parent is not None else 0
        block = Block(block_hash, height, parent, max(int(time.time()), previous_time + 1), sequence, txids)
        self.blocks[block_hash] = block
        if parent is None or (self.active and parent == self.active[-1]):
            self._extend(block)
        else:
            self._select_best_chain()
        return block

    def _extend(self, block: Block) -> None:
        self.active.append(block.hash)
        for position, txid in enumerate(block.txids, start=1):  # position 0: coinbase
            self._mined_at[txid] = (block.height, position)
            self._mempool.pop(txid, None)
        self._evict_expired()

    def _select_best_chain(self) -> None:
        """The active chain ends at the highest valid block; on a tie the current tip stays, else the first seen."""
        current_tip = self.active[-1] if self.active else None
        valid: set[str] = set()
        for block in self.blocks.values():
            if block.hash not in self.invalid_blocks and (block.parent is None or block.parent in valid):
                valid.add(block.hash)
        best = max(
            (self.blocks[block_hash] for block_hash in valid),
            key=lambda block: (block.height, block.hash == current_tip, -block.sequence),
        )
        chain: list[str] = []
        current: str | None = best.hash
        while current is not None:
            chain.append(current)
            current = self.blocks[current].parent
        self.active = chain[::-1]
        self._mined_at = {
            txid: (height, position)
            for height, block_hash in enumerate(self.active)
            for position, txid in enumerate(self.blocks[block_hash].txids, start=1)
        }
        unmined = [tx for tx in self.transactions.values() if tx.txid not in self._mined_at]
        self._mempool = {tx.txid: tx for tx in unmined if not self.is_expired(tx)}
        self._expired = {tx.txid: tx for tx in unmined if self.is_expired(tx)}

    def _evict_expired(self) -> None:
        next_height = self.height + 1
        for txid in [txid for txid, tx in self._mempool.items() if tx.expiry_height < next_height]:
            self._expired[txid] = self._mempool.pop(txid)
