"""A separate scheduler process for the concurrency and crash tests: runs billing ticks against a database.

    python -m tests.tick_worker DSN TICKS BATCH_SIZE

Ticks use the database clock, like the real scheduler; TICKS=0 ticks until killed. Prints "started" once the pool
is open so the test knows the process is ticking.
"""

from __future__ import annotations

import asyncio
import sys

from billing.charging import billing_tick
from billing.db import create_pool
from billing.unit_of_work import Database


async def main(dsn: str, ticks: int, batch_size: int) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    print("started", flush=True)
    done = 0
    while ticks == 0 or done < ticks:
        await billing_tick(Database(pool), batch_size=batch_size)
        done += 1
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
