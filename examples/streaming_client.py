"""A streaming client: pay for a ZEC spending permission on the regtest stand-in, open a session, watch its live
balance, and end it.

Against `make serve` (embedded defaults), with the values it prints:

    .venv/bin/python examples/streaming_client.py --vendor-id <demo vendor id> \\
        --rpc-url <regtest node URL> --rpc-password <its password> --seconds 20

The balance moves at every billing tick (`BILLING_INTERVAL_SECONDS`, 60 s by default; start the gateway with
`BILLING_INTERVAL_SECONDS=5 make serve` to watch it move). Test money only: the regtest stand-in's faucet pays.
"""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal
from typing import Any

import httpx
from paygo_client import AsyncPayGo, CreatedPermission

DEMO_WALLET = "tm9iNYCVAhLLa4rJtfqqHauR5xL1REdpiDs"  # the regtest address `paygo serve` suggests


async def rpc(node: httpx.AsyncClient, method: str, *params: Any) -> Any:
    answer = (await node.post("", json={"jsonrpc": "1.0", "id": method, "method": method, "params": params})).json()
    if answer.get("error"):
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


async def pay_from_faucet(node: httpx.AsyncClient, permission: CreatedPermission) -> str:
    """Send the amount to pay from the stand-in's faucet and mine a block; returns the txid."""
    amount = format(permission.amount_to_pay, "f")
    opid = await rpc(node, "z_sendmany", "ANY_TADDR", [{"address": permission.payment_address, "amount": amount}])
    while True:
        [operation] = await rpc(node, "z_getoperationstatus", [opid])
        if operation["status"] == "success":
            break
        if operation["status"] == "failed":
            raise RuntimeError(f"the faucet could not pay: {operation['error']}")
        await asyncio.sleep(0.2)
    await rpc(node, "generate", 1)
    return str(operation["result"]["txid"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--vendor-id", required=True, help="the vendor to stream from (`paygo serve` prints one)")
    parser.add_argument("--rpc-url", required=True, help="the regtest stand-in's RPC URL")
    parser.add_argument("--rpc-user", default="paygo")
    parser.add_argument("--rpc-password", required=True)
    parser.add_argument("--wallet", default=DEMO_WALLET, help="the paying wallet's Zcash address")
    parser.add_argument("--amount", type=Decimal, default=Decimal("10"), help="ZEC to authorize")
    parser.add_argument("--rate", type=Decimal, default=Decimal("2.5"), help="ZEC per streaming hour")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to stream")
    args = parser.parse_args()

    async with AsyncPayGo(args.gateway) as paygo, httpx.AsyncClient(
            base_url=args.rpc_url, auth=(args.rpc_user, args.rpc_password)) as node:
        permission = await paygo.create_zcash_permission(args.wallet, args.amount, args.rate)
        print(f"permission {permission.permission_id}: pay {permission.amount_to_pay:f} ZEC to "
              f"{permission.payment_address} for {permission.max_streaming_hours:f} hours")
        print(f"paid in transaction {await pay_from_faucet(node, permission)}")
        active = await paygo.wait_until_active(permission, timeout=120, interval=1)
        print(f"active: {active.remaining_amount:f} {active.asset} left")

        session = await paygo.open_session(args.wallet, args.vendor_id, token=permission.permission_token)
        print(f"streaming (session {session.session_id})")

        async def watch() -> None:
            async for update in paygo.live(session.session_code, token=permission.permission_token):
                print(f"  {update.status}: charged {update.charged_amount:f}, {update.remaining_amount:f} "
                      f"{update.asset} ({update.remaining_hours:f} h) left")

        watching = asyncio.create_task(watch())
        await asyncio.sleep(args.seconds)
        ended = await paygo.end_session(session.session_code)
        await asyncio.wait_for(watching, 30)  # the stream closes after the final state
        print(f"ended after {ended.duration_seconds} s: {ended.status}, charged {ended.amount:f} {ended.asset}")


if __name__ == "__main__":
    asyncio.run(main())
