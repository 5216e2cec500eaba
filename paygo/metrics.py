"""Prometheus metrics of one PayGo process, in a registry of its own (tests build many apps in one process).

The gateway observes every request (by route template, never the raw path: paths carry session codes) and sets
the gauges from the database and the funding sources when scraped. The scheduler counts its ticks:

    metrics = Metrics()
    with metrics.time_tick("billing"):
        await run_billing_tick()
    prometheus_client.start_http_server(9102, registry=metrics.registry)  # the scheduler's own /metrics
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from billing.reports import OperationalCounts
from kernel.funding import SourceStatus

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "paygo_http_request_duration_seconds", "HTTP request latency by route template, method and status",
            ["method", "route", "status"], buckets=REQUEST_BUCKETS, registry=r)
        self.scheduler_ticks = Counter(
            "paygo_scheduler_ticks", "Scheduler job runs by job and outcome (ok, error)", ["job", "outcome"],
            registry=r)
        self.scheduler_tick_duration = Histogram(
            "paygo_scheduler_tick_duration_seconds", "Scheduler job run duration", ["job"], buckets=TICK_BUCKETS,
            registry=r)
        self.database_up = Gauge("paygo_database_up", "1 when the last scrape could query the database", registry=r)
        self.active_sessions = Gauge("paygo_active_sessions", "Sessions open now", registry=r)
        self.pending_payments = Gauge(
            "paygo_pending_payments", "Payments seen on a funding source and not credited yet", registry=r)
        self.permissions_awaiting_payment = Gauge(
            "paygo_permissions_awaiting_payment", "Unexpired permissions waiting for their payment", registry=r)
        self.node_reachable = Gauge("paygo_node_reachable", "1 when the funding source answers", ["source"],
                                    registry=r)
        self.node_tip_height = Gauge("paygo_node_tip_height", "Tip height the funding source reports", ["source"],
                                     registry=r)
        self.node_tip_age = Gauge("paygo_node_tip_age_seconds", "Age of the funding source's tip block", ["source"],
                                  registry=r)
        self.outbox_messages = Gauge(
            "paygo_outbox_messages", "Outbox messages (webhooks, reminders) pending delivery or dead",
            ["kind", "status"], registry=r)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(method, route, str(status)).observe(seconds)

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
        self.database_up.set(0 if counts is None else 1)
        if counts is None:
            return
        self.active_sessions.set(counts.active_sessions)
        self.pending_payments.set(counts.pending_payments)
        self.permissions_awaiting_payment.set(counts.permissions_awaiting_payment)
        if counts.outbox is not None:
            self.outbox_messages.clear()  # a (kind, status) that drained must not keep its last value
            for (kind, status), messages in counts.outbox.items():
                self.outbox_messages.labels(kind, status).set(messages)

    def set_source_statuses(self, statuses: Iterable[SourceStatus]) -> None:
        for status in statuses:
            self.node_reachable.labels(status.name).set(1 if status.reachable else 0)
            if status.height is not None:
                self.node_tip_height.labels(status.name).set(status.height)
            if status.tip_age_seconds is not None:
                self.node_tip_age.labels(status.name).set(status.tip_age_seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
