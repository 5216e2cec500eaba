"""Chain-side RPC methods (zcashd, zebrad) and the methods every server has, with each server's shapes.

Each method takes `server` ("zcashd", "zallet" or "zebrad") first, then the JSON-RPC params."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from chains.zcash_address import ZcashAddress, ZcashNetwork, encode_transparent, validate_address
from kernel.errors import InvalidAddress
from regtest.zcash_chain import Chain
from regtest.zcash_params import as_int, as_list, as_string
from regtest.zcash_types import (
    CONSENSUS_BRANCH_ID,
    TRANSPARENT_KINDS,
    ZCASHD,
    ZEBRAD,
    Block,
    RpcMethodError,
    Transaction,
    script_pubkey,
    zec,
)
from regtest.zcash_wallet import Wallet


def parse_address(network: ZcashNetwork, text: Any) -> ZcashAddress | None:
    if not isinstance(text, str):
        return None
    try:
        return validate_address(text, network)
    except InvalidAddress:
        return None


class ChainRpc:
    def __init__(self, chain: Chain, wallet: Wallet, *, address_index: bool) -> None:
        self.chain = chain
        self.wallet = wallet  # only for zcashd's `ismine`
        self.network = wallet.network
        self.address_index = address_index  # zcashd: -insightexplorer; zebrad always has it

    # --- chain -----------------------------------------------------------------------------------------------

    def getblockchaininfo(self, server: str) -> dict[str, Any]:
        height = self.chain.height
        info: dict[str, Any] = {
            "chain": "regtest",
            "blocks": height,
            "headers": height,
            "bestblockhash": self.chain.tip.hash,
            "difficulty": Decimal(1),
            "verificationprogress": Decimal(1),
            "estimatedheight": height,
            "chainwork": f"{height + 1:064x}",
            "size_on_disk": 1000 * (height + 1),
            "commitments": 0,
            "chainSupply": {"monitored": True, "chainValue": zec(0), "chainValueZat": 0},
            "valuePools": [
                {"id": pool, "monitored": True, "chainValue": zec(0), "chainValueZat": 0}
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
        return self.chain.height

    def getbestblockhash(self, server: str) -> str:
        return self.chain.tip.hash

    def getblockhash(self, server: str, height_param: Any) -> str:
        height = as_int(server, height_param)
        if not 0 <= height <= self.chain.height:
            raise RpcMethodError(-8, "Block height out of range")
        return self.chain.active[height]

    def getblock(self, server: str, hash_or_height: Any, verbosity: Any = 1) -> Any:
        block = self._find_block(server, hash_or_height)
        verbosity = as_int(server, verbosity)
        if verbosity == 0:
            return block.hash * 8  # stands for the serialized block
        return self._block_json(block, verbosity)

    def getblockheader(self, server: str, block_hash: Any, verbose: Any = True) -> Any:
        block = self._find_block(server, as_string(server, block_hash))
        if not verbose:
            return block.hash * 4  # stands for the serialized header
        return self._block_json(block, 0)

    def generate(self, server: str, count: Any) -> list[str]:
        count = as_int(server, count)
        if count < 0:
            raise RpcMethodError(-8, "Invalid number of blocks")
        return self.chain.mine(count)

    def invalidateblock(self, server: str, block_hash: Any) -> None:
        block = self._find_block(server, as_string(server, block_hash))
        if block.parent is None:
            raise RpcMethodError(-8, "Cannot invalidate the genesis block")
        self.chain.invalidate(block)

    def reconsiderblock(self, server: str, block_hash: Any) -> None:
        self.chain.reconsider(self._find_block(server, as_string(server, block_hash)))

    def getrawmempool(self, server: str, verbose: Any = False) -> list[str]:
        return [tx.txid for tx in self.chain.mempool()]

    def getaddressbalance(self, server: str, addresses: Any) -> dict[str, int]:
        if server == ZCASHD and not self.address_index:
            raise RpcMethodError(
                -1,
                "getaddressbalance is disabled. Run './zcash-cli help getaddressbalance' for instructions on "
                "how to enable this feature.",
            )
        if isinstance(addresses, dict):
            addresses = addresses.get("addresses")
        texts = [addresses] if isinstance(addresses, str) else as_list(server, addresses)
        wanted: set[tuple[str, bytes]] = set()
        for text in texts:
            address = parse_address(self.network, text)
            if address is None or address.kind not in TRANSPARENT_KINDS:
                raise RpcMethodError(-5, "Invalid address")
            wanted.add((address.kind, address.receivers[address.kind]))
        total = sum(
            output.value_zat
            for tx, output in self.chain.outputs_to(wanted)
            if self.chain.mined_at(tx.txid) is not None
        )
        return {"balance": total, "received": total}

    def z_validateaddress(self, server: str, text: Any) -> dict[str, Any]:
        address = parse_address(self.network, text)
        if address is None:
            return {"isvalid": False}
        result: dict[str, Any] = {"isvalid": True, "address": address.text, "address_type": address.kind}
        if address.kind == "sapling":
            raw = address.receivers["sapling"]
            result.update(diversifier=raw[:11].hex(), diversifiedtransmissionkey=raw[11:][::-1].hex())
        if address.kind in TRANSPARENT_KINDS:
            result["isscript"] = address.kind == "p2sh"
        result["ismine"] = server == ZCASHD and self.wallet.owner_of(address) is not None
        return result

    # --- on every server -------------------------------------------------------------------------------------

    def validateaddress(self, server: str, text: Any) -> dict[str, Any]:
        address = parse_address(self.network, text)
        if address is None or address.kind not in TRANSPARENT_KINDS:
            return {"isvalid": False}
        hash20 = address.receivers[address.kind]
        result: dict[str, Any] = {"isvalid": True, "address": address.text}
        if server != ZEBRAD:
            result["scriptPubKey"] = script_pubkey(address.kind, hash20)
        if server == ZCASHD:
            result["ismine"] = (address.kind, hash20) in self.wallet.receivers
            result["iswatchonly"] = False
        result["isscript"] = address.kind == "p2sh"
        return result

    def getrawtransaction(self, server: str, txid: Any, verbose: Any = 0, blockhash: Any = None) -> Any:
        txid = as_string(server, txid)
        tx = self.chain.transactions.get(txid.lower())
        if tx is None:
            if server == ZCASHD:
                raise RpcMethodError(
                    -5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
                )
            raise RpcMethodError(-5, "Transaction not found in mempool or best chain")
        if not verbose:
            return raw_transaction_hex(tx)
        return self._transaction_json(server, tx)

    # --- shapes ----------------------------------------------------------------------------------------------

    def _find_block(self, server: str, hash_or_height: Any) -> Block:
        is_height = (isinstance(hash_or_height, int) and not isinstance(hash_or_height, bool)) or (
            isinstance(hash_or_height, str) and hash_or_height.isdigit()
        )
        if is_height:
            height = int(hash_or_height)
            if not 0 <= height <= self.chain.height:
                raise RpcMethodError(-8, "Block height out of range")
            return self.chain.block_at(height)
        block = self.chain.blocks.get(as_string(server, hash_or_height))
        if block is None:
            raise RpcMethodError(-5, "Block not found")
        return block

    def _block_json(self, block: Block, verbosity: int) -> dict[str, Any]:
        header: dict[str, Any] = {
            "hash": block.hash,
            "confirmations": self.chain.block_confirmations(block),
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
            header["nextblockhash"] = self.chain.active[block.height + 1]
        if verbosity == 0:
            return header
        transactions: list[Any] = list(block.txids)
        if verbosity >= 2:
            transactions = [self._transaction_json(ZCASHD, self.chain.transactions[txid]) for txid in block.txids]
        return {**header, "size": 1000 + 500 * len(block.txids), "tx": transactions}

    def _transaction_json(self, server: str, tx: Transaction) -> dict[str, Any]:
        vout = []
        for output in tx.outputs:
            if output.pool != "transparent":
                continue
            entry: dict[str, Any] = {"value": zec(output.value_zat), "valueZat": output.value_zat}
            if server == ZCASHD:
                entry["valueSat"] = output.value_zat
            entry["n"] = output.index
            entry["scriptPubKey"] = {
                "asm": "",
                "hex": script_pubkey(output.receiver_kind, output.receiver),
                "reqSigs": 1,
                "type": "pubkeyhash" if output.receiver_kind == "p2pkh" else "scripthash",
                "addresses": [encode_transparent(self.network, output.receiver_kind, output.receiver)],
            }
            vout.append(entry)
        spent = {(txid, index): self.chain.transactions[txid].outputs[index] for txid, index in tx.spends}
        sapling_spends = {key: output for key, output in spent.items() if output.pool == "sapling"}
        sapling_outputs = [output for output in tx.outputs if output.pool == "sapling"]
        orchard = [output for output in (*spent.values(), *tx.outputs) if output.pool == "orchard"]
        sapling_balance = sum(o.value_zat for o in sapling_spends.values()) - sum(o.value_zat for o in sapling_outputs)
        raw = raw_transaction_hex(tx)
        tx_json: dict[str, Any] = {
            "hex": raw,
            "txid": tx.txid,
            "authdigest": hashlib.sha256(bytes.fromhex(tx.txid)).hexdigest(),
            "size": len(raw) // 2,
            "overwintered": True,
            "version": 5,
            "versiongroupid": "26a7270a",
            "locktime": 0,
            "expiryheight": tx.expiry_height,
            "vin": [],
            "vout": vout,
            "vjoinsplit": [],
            "valueBalance": zec(sapling_balance) if sapling_balance else Decimal(0),
            "valueBalanceZat": sapling_balance,
            "vShieldedSpend": [
                {"nullifier": hashlib.sha256(f"{txid}:{index}".encode()).hexdigest()} for txid, index in sapling_spends
            ],
            "vShieldedOutput": [{"cmu": hashlib.sha256(o.receiver).hexdigest()} for o in sapling_outputs],
            "orchard": {"actions": [{"cmx": hashlib.sha256(o.receiver).hexdigest()} for o in orchard]},
        }
        mined = self.chain.mined_at(tx.txid)
        if mined is not None:
            block = self.chain.block_at(mined[0])
            tx_json.update(
                blockhash=block.hash, height=block.height, confirmations=self.chain.confirmations(tx.txid),
                time=block.time, blocktime=block.time,
            )
        return tx_json


def raw_transaction_hex(tx: Transaction) -> str:
    return "050000800a27a726" + tx.txid + "".join(f"{o.value_zat:016x}" for o in tx.outputs)
