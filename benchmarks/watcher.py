"""Benchmark: the payment watcher with N pending Zcash permissions, against floors measured in the same run.

    .venv/bin/python benchmarks/watcher.py --pending 100000

It starts the Zcash regtest stand-in (zcashd personality) as its own process (`paygo zcash-regtest`), makes a fresh
database (DATABASE_URL's server, else the local one, else a private one under .paygo/), allocates N payment
addresses through the stand-in in batched requests and inserts N pending permissions for them in SQL, then times
- the first pass (no cursor yet: the whole wallet is read);
- idle passes (nothing changed on chain: same tip, same mempool), against the floor of one tip request to the node
  plus one trivial SQL round trip;
- passes after a block pays `--paid` of the permissions (one transaction, one output each; 1 confirmation
  required), against the floor of the same RPC (the tip request and the one wallet listing with the same window)
  plus a bare SQL upsert of the same payment rows and an update of the same permissions (in a transaction rolled
  back, so the watcher then finds the chain as the floor did);
- block -> `active` latency: the watcher runs every `--interval` seconds as the scheduler runs it; a block paying
  one permission, then blocks paying `--paid`, are mined at random moments between passes, and the latency is from
  the `generate` call to the end of the pass that activated them (its commits done).
No Redis (the post-commit hook then only has nothing to drop). Not a timed test: run it by hand and read the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.db import create_pool  # noqa: E402
from billing.schema import migrate  # noqa: E402
from billing.sources import FundingSources  # noqa: E402
from billing.unit_of_work import Database  # noqa: E402
from billing.watcher import PaymentWatcher  # noqa: E402
from chains.jsonrpc import JsonRpcClient  # noqa: E402
from chains.zcash import ZcashFundingSource  # noqa: E402
from chains.zcash_address import ZcashNetwork, encode_transparent  # noqa: E402
from kernel.assets import ZEC, AssetRegistry  # noqa: E402
from paygo.embedded import create_database, drop_database, dsn_for_database, find_or_start_postgres  # noqa: E402
from tests.pending_permissions import allocate_addresses, insert_pending_permissions  # noqa: E402

RPC_USER = "bench"
AMOUNT_ZAT = 10_000_000
WALLET = encode_transparent(ZcashNetwork.REGTEST, "p2pkh", bytes(range(20)))
IDLE_PASSES = 30

FLOOR_SQL = """
WITH paid AS (
    INSERT INTO payments (funding_source, txid, output_index, asset, amount, permission_id, address, confirmations)
    SELECT 'zcash', r.txid, r.output_index, 'ZEC', r.amount, p.id, p.payment_address, r.confirmations
      FROM unnest($1::text[], $2::int[], $3::numeric[], $4::int[], $5::text[])
           AS r(txid, output_index, amount, confirmations, address)
      JOIN permissions p ON p.funding_source = 'zcash' AND p.payment_address = r.address
    ON CONFLICT (funding_source, txid, output_index) DO UPDATE SET confirmations = EXCLUDED.confirmations
    RETURNING permission_id, amount
)
UPDATE permissions p SET status = 'active', balance = p.balance + paid.amount,
                         funded_amount = p.funded_amount + paid.amount, activated_at = now()
  FROM paid WHERE p.id = paid.permission_id
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_stand_in(password: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv/bin/paygo"), "zcash-regtest", "--listen", f"127.0.0.1:{port}", "--rpcuser", RPC_USER,
        "--rpcpassword", password, "--personality", "zcashd",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    probe = JsonRpcClient(url, user=RPC_USER, password=password, retry_attempts=1)
    try:
        for _ in range(300):
            try:
                await probe.call("getblockcount")
                return process, url
            except Exception:
                await asyncio.sleep(0.05)
    finally:
        await probe.close()
    process.terminate()
    raise RuntimeError("the stand-in did not start")


async def timed(run: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await run()
    return time.perf_counter() - started, result


def describe(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms"


class Bench:
    def __init__(self, pool: Any, wallet: JsonRpcClient, watcher: PaymentWatcher,
                 addresses: list[tuple[str, str]]) -> None:
        self.pool = pool
        self.wallet = wallet
        self.watcher = watcher
        self.unpaid = list(addresses)

    async def pay_block(self, paid: int, before_mining: Callable[[], None] = lambda: None) -> None:
        """One faucet transaction paying the next `paid` permissions, mined (`before_mining` is called just
        before the block is mined)."""
        batch, self.unpaid = self.unpaid[:paid], self.unpaid[paid:]
        amount = Decimal(AMOUNT_ZAT).scaleb(-8)
        opid = await self.wallet.send("z_sendmany", "ANY_TADDR",
                                      [{"address": address, "amount": amount} for address, _ in batch])
        for _ in range(1000):
            [status] = await self.wallet.call("z_getoperationstatus", [opid])
            if status["status"] == "success":
                break
            await asyncio.sleep(0.01)
        before_mining()
        await self.wallet.call("generate", 1)

    async def idle_floor(self) -> float:
        async def floor() -> None:
            await self.wallet.batch([("getbestblockhash", []), ("getblockcount", []), ("getrawmempool", [])])
            async with self.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return (await timed(floor))[0]

    async def block_floor(self, max_confirmations: int) -> float:
        async def floor() -> None:
            await self.wallet.batch([("getbestblockhash", []), ("getblockcount", []), ("getrawmempool", [])])
            rows = [row for row in await self.wallet.call("z_listunspent", 0, max_confirmations, True)
                    if row["confirmations"] == 1]  # the new block's: those the watcher writes
            async with self.pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    await conn.execute(
                        FLOOR_SQL, [r["txid"] for r in rows], [r["outindex"] for r in rows],
                        [int(Decimal(r["amount"]).scaleb(8)) for r in rows], [r["confirmations"] for r in rows],
                        [r["address"] for r in rows])
                finally:
                    await transaction.rollback()
        return (await timed(floor))[0]


async def latency(bench: Bench, interval: float, rounds: int, paid: int) -> list[float]:
    """The watcher every `interval` seconds (fixed rate, as APScheduler runs it); a paying block mined at a random
    moment; the time from the block to the end of the pass that activated its permissions."""
    results: list[float] = []
    mined_at: list[float] = []
    activated = asyncio.Event()
    stop = asyncio.Event()

    async def scheduler() -> None:
        next_run = time.perf_counter()
        while not stop.is_set():
            summary = await bench.watcher.run()
            if summary.activated and mined_at:
                results.append(time.perf_counter() - mined_at.pop())
                activated.set()
            next_run += interval
            await asyncio.sleep(max(next_run - time.perf_counter(), 0))

    task = asyncio.create_task(scheduler())
    try:
        for _ in range(rounds):
            await asyncio.sleep(random.uniform(0, interval))
            activated.clear()
            await bench.pay_block(paid, lambda: mined_at.append(time.perf_counter()))
            await activated.wait()
    finally:
        stop.set()
        await task
    return results


async def main(pending: int, paid: int, interval: float, rounds: int) -> None:
    if os.environ.get("DATABASE_URL"):
        server, embedded = dsn_for_database(os.environ["DATABASE_URL"], "postgres"), None
    else:
        embedded = await find_or_start_postgres(ROOT / ".paygo", "postgres")
        server = embedded.dsn
    name = f"paygo_bench_watcher_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    node, url = await start_stand_in(password)
    wallet = JsonRpcClient(url, user=RPC_USER, password=password)
    source = ZcashFundingSource(wallet_url=url, user=RPC_USER, password=password, network=ZcashNetwork.REGTEST,
                                min_confirmations=1)
    await create_database(server, name)
    pool = await create_pool(dsn_for_database(server, name), min_size=2, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        account = (await wallet.call("z_getnewaccount"))["account"]
        seconds, addresses = await timed(lambda: allocate_addresses(wallet, account, pending))
        async with pool.acquire() as conn:
            await insert_pending_permissions(conn, addresses, amount_zat=AMOUNT_ZAT, wallet=WALLET)
            await conn.execute("VACUUM ANALYZE")
        print(f"pending permissions: {pending} (addresses from the stand-in in {seconds:.1f} s)")
        watcher = PaymentWatcher(Database(pool), FundingSources({"zcash": source}, AssetRegistry([ZEC])))
        bench = Bench(pool, wallet, watcher, addresses)

        first, _ = await timed(watcher.run)
        print(f"first pass (whole wallet, no cursor):      {first * 1000:8.1f} ms")

        idle = [(await timed(watcher.run))[0] for _ in range(IDLE_PASSES)]
        idle_floor = [await bench.idle_floor() for _ in range(IDLE_PASSES)]
        print(f"idle pass ({IDLE_PASSES} runs):    {describe(idle)}")
        print(f"  floor (tip request + SELECT 1): {describe(idle_floor)}")
        print(f"  ratio (medians):               {statistics.median(idle) / statistics.median(idle_floor):.2f}x")

        block: list[float] = []
        block_floor: list[float] = []
        for _ in range(rounds):
            await bench.pay_block(paid)
            tip = await wallet.call("getblockcount")
            cursor = await pool.fetchval("SELECT max(height) FROM chain_cursor_blocks")
            block_floor.append(await bench.block_floor(tip - cursor + 3))
            seconds, summary = await timed(watcher.run)
            assert len(summary.activated) == paid, summary
            block.append(seconds)
        print(f"pass with a block paying {paid} ({rounds} runs): {describe(block)}")
        print(f"  floor (same RPC + bare upsert of the same rows): {describe(block_floor)}")
        print(f"  ratio (medians):               {statistics.median(block) / statistics.median(block_floor):.2f}x")

        for per_block in (1, paid):
            latencies = await latency(bench, interval, rounds, per_block)
            print(f"block paying {per_block} -> active, watcher every {interval:g} s ({rounds} blocks): "
                  f"mean {statistics.mean(latencies):.3f} s, max {max(latencies):.3f} s "
                  f"(target: interval + 0.2 s = {interval + 0.2:.1f} s)")
        remaining = await pool.fetchval("SELECT count(*) FROM permissions WHERE status = 'pending_payment'")
        print(f"still pending: {remaining} (of {pending})")
    finally:
        await pool.close()
        await source.close()
        await wallet.close()
        node.terminate()
        await node.wait()
        await drop_database(server, name)
        if embedded is not None:
            await embedded.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--paid", type=int, default=1_000, help="permissions one block pays")
    parser.add_argument("--interval", type=float, default=5.0, help="watcher interval in seconds")
    parser.add_argument("--rounds", type=int, default=3, help="paying blocks per measurement")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.pending, arguments.paid, arguments.interval, arguments.rounds))
