"""Many pending Zcash permissions, fast: addresses allocated through the stand-in in batched JSON-RPC requests,
permission rows inserted with one SQL statement (as the create endpoint would leave them, without its HTTP cost).
Used by the watcher's scale tests and by benchmarks/watcher.py."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from chains.jsonrpc import JsonRpcClient

RECEIVER_TYPES = ["sapling"]  # as chains.zcash asks for per-permission addresses


async def first_account(wallet: JsonRpcClient) -> int | str:
    """The account the Zcash source uses by default (the wallet's first): a zcashd number or a Zallet UUID."""
    [account, *_] = await wallet.call("z_listaccounts")
    return account.get("account_uuid", account.get("account"))


async def allocate_addresses(wallet: JsonRpcClient, account: int | str, count: int) -> list[tuple[str, str]]:
    """`count` fresh payment addresses of `account` with their diversifier index (the permission's locator)."""
    replies = await wallet.batch([("z_getaddressforaccount", [account, RECEIVER_TYPES])] * count)
    return [(reply["address"], str(reply["diversifier_index"])) for reply in replies]


async def insert_pending_permissions(conn: asyncpg.Connection, addresses: list[tuple[str, str]], *,
                                     amount_zat: int, wallet: str) -> list[UUID]:
    """Pending ZEC permissions of `amount_zat` paid to `addresses`, in order; their ids."""
    rows = await conn.fetch(
        """
        INSERT INTO permissions (id, funding_source, asset, asset_decimals, user_wallet_address, token_hash,
                                 approved_amount, rate_per_hour, duration_days, payment_address, payment_locator,
                                 expires_at, payment_due_at)
        SELECT gen_random_uuid(), 'zcash', 'ZEC', 8, $4, sha256(convert_to(a.address, 'UTF8')), $3, $3, 30,
               a.address, a.locator, now() + interval '30 days', now() + interval '24 hours'
          FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS a(address, locator, position)
         ORDER BY a.position
        RETURNING id, payment_address
        """,
        [address for address, _ in addresses], [locator for _, locator in addresses], amount_zat, wallet,
    )
    by_address = {row["payment_address"]: row["id"] for row in rows}
    return [by_address[address] for address, _ in addresses]
