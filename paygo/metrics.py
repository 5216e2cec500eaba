"""Prometheus metrics of PayGo's processes: what each process observes, and gauges read at scrape time.

The gateway observes every request (by route template, never the raw path: paths carry session codes) and the
scheduler counts its ticks; these live in a registry of each `Metrics` (tests build many apps in one process).
When `paygo serve` runs several processes, each writes them to files in one directory (prometheus-client's
multiprocess mode, PROMETHEUS_MULTIPROC_DIR set before the process imported prometheus_client), and a scrape of
any worker sums every process's files. The gauges from the database and the funding sources are not process state:
they are what the scraping worker read just now, rendered as they are (never summed across workers, never left
stale by one).

    metrics = Metrics()
    with metrics.time_tick("billing"):
        await run_billing_tick()
    prometheus_client.start_http_server(9102, registry=metrics.registry)  # the scheduler's own /metrics
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from billing.reports import OperationalCounts
from kernel.funding import SourceStatus

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, multiprocess_dir: Path | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        r = self.registry
        self.request_duration = Histogram(
            "paygo_http_request_duration_seconds", "HTTP request latency by route template, method and status",
            ["method", "route", "status"], buckets=REQUEST_BUCKETS, registry=r)
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self.scheduler_ticks = Counter(
            "paygo_scheduler_ticks", "Scheduler job runs by job and outcome (ok, error)", ["job", "outcome"],
            registry=r)
        self.scheduler_tick_duration = Histogram(
            "paygo_scheduler_tick_duration_seconds", "Scheduler job run duration", ["job"], buckets=TICK_BUCKETS,
            registry=r)
        self.scrape = ScrapeGauges()
        if multiprocess_dir is None:
            r.register(self.scrape)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:  # labels() validates and locks each time: each series' child is kept
            child = self._request_children[key] = self.request_duration.labels(method, route, str(status))
        child.observe(seconds)

    def observe_tick(self, job: str, seconds: float, ok: bool) -> None:
        self.scheduler_ticks.labels(job, "ok" if ok else "error").inc()
        self.scheduler_tick_duration.labels(job).observe(seconds)

    @contextmanager
    def time_tick(self, job: str) -> Iterator[None]:
        """Count and time one run of `job`; an exception counts as an error and propagates."""
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.observe_tick(job, time.perf_counter() - started, ok)

    def set_database_counts(self, counts: OperationalCounts | None) -> None:
        """The gauges read from the database at scrape time; None when the database did not answer."""
        self.scrape.counts = counts
        self.scrape.database_up = counts is not None

    def set_source_statuses(self, statuses: Iterable[SourceStatus]) -> None:
        self.scrape.statuses = list(statuses)

    def render(self) -> bytes:
        """Every process's metrics (this one's alone outside multiprocess mode) and this scrape's gauges, in the
        Prometheus text format."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        exposed = CollectorRegistry()
        MultiProcessCollector(exposed, path=str(self.multiprocess_dir))
        exposed.register(self.scrape)
        return generate_latest(exposed)


class ScrapeGauges(Collector):
    """The gauges one scrape reads from the database and the funding sources, exposed as read."""

    def __init__(self) -> None:
        self.database_up = False
        self.counts: OperationalCounts | None = None
        self.statuses: list[SourceStatus] = []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("paygo_database_up", "1 when the last scrape could query the database",
                                value=1 if self.database_up else 0)
        counts = self.counts
        if counts is not None:
            yield GaugeMetricFamily("paygo_active_sessions", "Sessions open now", value=counts.active_sessions)
            yield GaugeMetricFamily("paygo_pending_payments",
                                    "Payments seen on a funding source and not credited yet",
                                    value=counts.pending_payments)
            yield GaugeMetricFamily("paygo_permissions_awaiting_payment",
                                    "Unexpired permissions waiting for their payment",
                                    value=counts.permissions_awaiting_payment)
            if counts.outbox is not None:
                outbox = GaugeMetricFamily(
                    "paygo_outbox_messages", "Outbox messages (webhooks, reminders) pending delivery or dead",
                    labels=["kind", "status"])
                for labels, messages in sorted(counts.outbox.items()):
                    outbox.add_metric(list(labels), messages)
                yield outbox
        reachable = GaugeMetricFamily("paygo_node_reachable", "1 when the funding source answers", labels=["source"])
        height = GaugeMetricFamily("paygo_node_tip_height", "Tip height the funding source reports",
                                   labels=["source"])
        age = GaugeMetricFamily("paygo_node_tip_age_seconds", "Age of the funding source's tip block",
                                labels=["source"])
        for source in self.statuses:
            reachable.add_metric([source.name], 1 if source.reachable else 0)
            if source.height is not None:
                height.add_metric([source.name], source.height)
            if source.tip_age_seconds is not None:
                age.add_metric([source.name], source.tip_age_seconds)
        yield from (reachable, height, age)
