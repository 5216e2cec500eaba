"""A vendor's reconciliation of one UTC day: the CSV of the sessions that started that day against the gateway's
earnings summary for that day, per asset, in exact decimals.

Against `make serve`, with the demo vendor key it prints (after a streaming round, e.g. examples/streaming_client.py):

    .venv/bin/python examples/reconcile.py --vendor-key pgv_... --day $(date -u +%F)

The two sides count differently at the day's edges: the CSV has each session's whole charge (also what it was
charged after midnight), the summary every charge made during the day (also for sessions that started before it).
Sessions that were still running at midnight are listed, since they explain a difference. Exits 1 when a
difference is left.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from paygo_client import PayGo


def main() -> int:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--vendor-key", required=True)
    parser.add_argument("--day", type=date.fromisoformat, default=yesterday, help="YYYY-MM-DD (UTC)")
    parser.add_argument("--csv", type=Path, help="where to keep the CSV (default: sessions-<day>.csv)")
    args = parser.parse_args()
    day: date = args.day
    next_day = day + timedelta(days=1)
    midnight = datetime.combine(next_day, time(), tzinfo=UTC)
    path: Path = args.csv or Path(f"sessions-{day}.csv")

    with PayGo(args.gateway, vendor_key=args.vendor_key) as paygo:
        with path.open("wb") as file:
            paygo.download_vendor_sessions_csv(file, started_from=day, started_to=next_day)
        summary = paygo.vendor_charges_summary(started_from=day, started_to=next_day, group_by="day")

    charged: defaultdict[str, Decimal] = defaultdict(Decimal)
    sessions: defaultdict[str, int] = defaultdict(int)
    running_at_midnight = []
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            charged[row["asset"]] += Decimal(row["charged_amount"])
            sessions[row["asset"]] += 1
            if not row["ended_at"] or datetime.fromisoformat(row["ended_at"]) >= midnight:
                running_at_midnight.append(row["session_id"])
    earned = {row.asset: row.amount for row in summary.rows}

    print(f"{day}: sessions in {path}, against the earnings summary")
    print(f"{'asset':<8}{'sessions':>9}{'charged (CSV)':>22}{'earned (summary)':>22}{'difference':>20}")
    differences = 0
    for asset in sorted(charged.keys() | earned.keys()):
        difference = charged[asset] - earned.get(asset, Decimal(0))
        differences += difference != 0
        print(f"{asset:<8}{sessions[asset]:>9}{charged[asset]:>22f}{earned.get(asset, Decimal(0)):>22f}"
              f"{difference:>20f}")
    if running_at_midnight:
        print(f"still running at midnight (charges after it are in {next_day}'s summary): "
              + ", ".join(running_at_midnight))
    print("reconciled" if not differences else f"{differences} asset(s) differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
