"""The stand-in node: its state (chain, wallet) and one table of RPC methods saying which server offers each, how
many parameters it takes, and whether the wallet sync lock refuses it; `execute` runs a call as a server would."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chains.zcash_address import ZcashNetwork
from regtest.zcash_chain import Chain
from regtest.zcash_chain_rpc import ChainRpc
from regtest.zcash_send_rpc import SendRpc
from regtest.zcash_types import PERSONALITIES, ZALLET, ZCASHD, ZEBRAD, RpcMethodError
from regtest.zcash_wallet import Wallet
from regtest.zcash_wallet_rpc import WalletRpc

# Which servers offer which methods: zcashd has both sides, Zallet the wallet side, zebrad the chain side.
CHAIN_SERVERS = frozenset({ZCASHD, ZEBRAD})
WALLET_SERVERS = frozenset({ZCASHD, ZALLET})
ALL_SERVERS = frozenset({ZCASHD, ZALLET, ZEBRAD})


@dataclass(frozen=True)
class Method:
    handler: Callable[..., Any]
    names: tuple[str, ...]  # parameter names, for jsonrpsee's named params and for the arity check
    required: int
    servers: frozenset[str]
    wallet: bool = False  # refused while the wallet sync lock is set
    zcashd_names: tuple[str, ...] | None = None  # where zcashd takes fewer parameters than Zallet


class RegtestZcash:
    """The node's state and its RPC methods. `server` tells a method which software is answering ("zcashd",
    "zallet" or "zebrad"), since shapes differ between them."""

    def __init__(self, *, personality: str, faucet_zat: int, address_index: bool = True) -> None:
        if personality not in PERSONALITIES:
            raise ValueError(f"personality must be one of {PERSONALITIES}, not {personality!r}")
        self.personality = personality
        seed = secrets.token_bytes(32)
        self.chain = Chain(seed)
        self.wallet = Wallet(self.chain, ZcashNetwork.REGTEST, seed, personality, faucet_zat)
        self.chain_rpc = ChainRpc(self.chain, self.wallet, address_index=address_index)
        self.wallet_rpc = WalletRpc(self.chain, self.wallet)
        self.send_rpc = SendRpc(self.chain, self.wallet)
        self.methods = self._method_table()

    def _method_table(self) -> dict[str, Method]:
        chain, wallet, send = self.chain_rpc, self.wallet_rpc, self.send_rpc
        return {
            "getblockchaininfo": Method(chain.getblockchaininfo, (), 0, CHAIN_SERVERS),
            "getblockcount": Method(chain.getblockcount, (), 0, CHAIN_SERVERS),
            "getbestblockhash": Method(chain.getbestblockhash, (), 0, CHAIN_SERVERS),
            "getblockhash": Method(chain.getblockhash, ("height",), 1, CHAIN_SERVERS),
            "getblock": Method(chain.getblock, ("hash_or_height", "verbosity"), 1, CHAIN_SERVERS),
            "getblockheader": Method(chain.getblockheader, ("hash", "verbose"), 1, CHAIN_SERVERS),
            "generate": Method(chain.generate, ("num_blocks",), 1, CHAIN_SERVERS),
            "invalidateblock": Method(chain.invalidateblock, ("block_hash",), 1, CHAIN_SERVERS),
            "reconsiderblock": Method(chain.reconsiderblock, ("block_hash",), 1, CHAIN_SERVERS),
            "getrawmempool": Method(chain.getrawmempool, ("verbose",), 0, CHAIN_SERVERS),
            "getaddressbalance": Method(chain.getaddressbalance, ("address_strings",), 1, CHAIN_SERVERS),
            "z_validateaddress": Method(chain.z_validateaddress, ("address",), 1, CHAIN_SERVERS),
            "validateaddress": Method(chain.validateaddress, ("address",), 1, ALL_SERVERS),
            "getrawtransaction": Method(chain.getrawtransaction, ("txid", "verbose", "blockhash"), 1, ALL_SERVERS),
            "z_getnewaccount": Method(
                wallet.z_getnewaccount, ("account_name", "seedfp"), 0, WALLET_SERVERS, True, zcashd_names=()
            ),
            "z_listaccounts": Method(
                wallet.z_listaccounts, ("include_addresses",), 0, WALLET_SERVERS, True, zcashd_names=()
            ),
            "z_getaddressforaccount": Method(
                wallet.z_getaddressforaccount, ("account", "receiver_types", "diversifier_index"), 1,
                WALLET_SERVERS, True,
            ),
            "z_listreceivedbyaddress": Method(
                wallet.z_listreceivedbyaddress, ("address", "minconf", "as_of_height"), 1, frozenset({ZCASHD}), True
            ),
            "z_listunspent": Method(
                wallet.z_listunspent, ("minconf", "maxconf", "include_watchonly", "addresses", "as_of_height"), 0,
                WALLET_SERVERS, True,
            ),
            # Zallet reads its database here without waiting for sync (no ensure_synced in Zallet's methods.rs).
            "z_listtransactions": Method(
                wallet.z_listtransactions, ("account_uuid", "start_height", "end_height", "offset", "limit"), 0,
                frozenset({ZALLET}),
            ),
            "gettransaction": Method(
                wallet.gettransaction, ("txid", "include_watchonly"), 1, frozenset({ZCASHD}), True
            ),
            "z_viewtransaction": Method(wallet.z_viewtransaction, ("txid",), 1, WALLET_SERVERS, True),
            "getwalletstatus": Method(wallet.getwalletstatus, (), 0, frozenset({ZALLET})),
            "regtest_setwalletsyncing": Method(wallet.regtest_setwalletsyncing, ("code", "calls"), 1, WALLET_SERVERS),
            "z_sendmany": Method(
                send.z_sendmany, ("fromaddress", "amounts", "minconf", "fee", "privacy_policy"), 2, WALLET_SERVERS,
                True,
            ),
            "z_getoperationstatus": Method(send.z_getoperationstatus, ("operationid",), 0, WALLET_SERVERS, True),
            "z_getoperationresult": Method(send.z_getoperationresult, ("operationid",), 0, WALLET_SERVERS, True),
            "regtest_failnextsend": Method(send.regtest_failnextsend, ("mode",), 1, WALLET_SERVERS),
        }

    def execute(self, server: str, name: Any, params: Any) -> Any:
        """Run one call as `server` would; raise RpcMethodError for a JSON-RPC error."""
        method = self.methods.get(name) if isinstance(name, str) else None
        if method is None or server not in method.servers:
            raise RpcMethodError(-32601, "Method not found")
        positional = _positional(server, method, params)
        names = method.zcashd_names if server == ZCASHD and method.zcashd_names is not None else method.names
        if len(positional) < method.required or len(positional) > len(names):
            if server == ZCASHD:
                bound = "Not enough" if len(positional) < method.required else "Too many"
                raise RpcMethodError(-32602, f"{bound} parameters for method `{name}`")
            raise RpcMethodError(-32602, "Invalid params", f"{len(positional)} parameters given")
        if method.wallet:
            self.wallet_rpc.sync.check()
        return method.handler(server, *positional)


def _positional(server: str, method: Method, params: Any) -> list[Any]:
    if params is None:
        return []
    if isinstance(params, list):
        return params
    if server != ZCASHD and isinstance(params, dict):  # jsonrpsee accepts named params
        unknown = set(params) - set(method.names)
        if unknown:
            raise RpcMethodError(-32602, "Invalid params", f"unknown parameter {min(unknown)}")
        given = [params.get(name) for name in method.names]
        while given and given[-1] is None:
            given.pop()
        return given
    raise RpcMethodError(-32600, "Params must be an array")
