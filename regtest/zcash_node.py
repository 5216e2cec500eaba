"""An in-memory Zcash regtest node speaking zcashd-compatible JSON-RPC, for tests and the gateway's embedded default.

No Zcash node can be installed on this machine, so this stand-in reproduces what PayGo relies on, with the shapes,
HTTP statuses, Content-Types and error codes of the real software (see shared/reference/zcash-ethereum-rpc.md):

- personality "zcashd": one URL serves wallet and chain methods; errors come with HTTP 500 (-32600 -> 400,
  -32601 -> 404); Content-Type exactly `application/json`; params must be an array; bad credentials get a 401 with
  an empty body after 250 ms.
- personality "zallet": `/` is Zallet (wallet methods only, accounts are UUIDs, `z_listunspent` with
  `value`/`valueZat` filtered per account, `z_listtransactions`, a transparent gap limit of 10, no
  `z_listreceivedbyaddress`) and `/node` is zebrad (chain methods, method errors with HTTP 200, bad credentials
  drop the connection); both answer with `application/json; charset=utf-8` (jsonrpsee).

The chain is a tree of blocks whose best valid branch is the active chain; `generate` mines the mempool,
`invalidateblock` / `reconsiderblock` make reorgs, and a transaction not in the active chain is in the mempool
(0 confirmations) until its expiry height passes. A faucet pays anyone through `z_sendmany ["ANY_TADDR", ...]`;
`z_sendmany` from a wallet address spends the account's notes (ZIP 317 fee, change, privacy policy), and
`z_viewtransaction` shows a wallet transaction's spends and (decrypted) outputs. Addresses are
real encodings (`chains.zcash_address`) of deterministic per-account, per-index receiver bytes; no cryptography is
modelled.

Test controls that no real node has:
- `regtest_setwalletsyncing [code, calls?]`: wallet methods answer -28, -10 (Zallet catching up) or -2 (Zallet's
  reorg sync lock) until cleared, or for the next `calls` calls.
- `regtest_failnextsend [mode]`: the next `z_sendmany` from a wallet address hangs ("hang"), is sent but never
  answered ("timeout"), or is sent before the node "restarts" ("crash_after_send"); see zcash_send_rpc.

This module is the entry point; the parts live beside it:
- zcash_chain: blocks, best chain, reorgs, mempool, transactions;
- zcash_wallet: accounts, address derivation and allocation, notes, per-account effects; zcash_spend: building a
  wallet's own transactions;
- zcash_chain_rpc, zcash_wallet_rpc, zcash_send_rpc: the methods with each server's shapes; zcash_params: parameter
  checking; zcash_rpc: the method table and dispatch; zcash_http: the HTTP servers.
"""

from regtest.zcash_http import RunningNode, create_app, start_zcash_regtest
from regtest.zcash_rpc import RegtestZcash
from regtest.zcash_types import DEFAULT_FAUCET_ZAT, NO_MEMO, PERSONALITIES, RpcMethodError

__all__ = [
    "DEFAULT_FAUCET_ZAT",
    "NO_MEMO",
    "PERSONALITIES",
    "RegtestZcash",
    "RpcMethodError",
    "RunningNode",
    "create_app",
    "start_zcash_regtest",
]
