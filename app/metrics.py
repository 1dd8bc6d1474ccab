"""Prometheus metrics for ingress, the delivery log and its recovery, in a registry per Runtime (no import-time state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Ingress answers in single-digit milliseconds when healthy; the buckets resolve that range finely.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _ScrapeTimeGauges(Collector):
    """Gauges computed when Prometheus scrapes: queue depth and the delivery log by status.

    Read at scrape time from Redis and the database, so every web and worker process reports the
    same numbers (per-process counters would each see only their own share).
    """

    def __init__(
        self,
        queue_depths: Callable[[], dict[str, int]],
        delivery_counts: Callable[[], Iterable[tuple[str, str, str, int]]],
        oldest_kept: Callable[[], dict[str, float | None]] | None = None,
    ) -> None:
        self.queue_depths = queue_depths
        self.delivery_counts = delivery_counts
        self.oldest_kept = oldest_kept

    def collect(self):
        depth = GaugeMetricFamily("draftsmith_queue_depth", "Messages waiting in each queue", labels=["queue"])
        try:
            for queue, size in self.queue_depths().items():
                depth.add_metric([queue], size)
        except Exception:  # Redis down: report nothing rather than fail the whole scrape
            pass
        yield depth
        deliveries = GaugeMetricFamily(
            "draftsmith_deliveries",
            "Deliveries recorded in the last 24 hours, by event, action and processing status",
            labels=["event", "action", "status"],
        )
        try:
            for event, action, status, count in self.delivery_counts():
                deliveries.add_metric([event, action or "", status], count)
        except Exception:
            pass
        yield deliveries
        if self.oldest_kept is None:
            return
        kept = GaugeMetricFamily(
            "draftsmith_oldest_kept_seconds",
            "Age of the oldest row still kept, by kind: retention (DRAFTSMITH_RETENTION_DAYS) keeps it bounded",
            labels=["kind"],
        )
        try:
            for kind, age in self.oldest_kept().items():
                if age is not None:
                    kept.add_metric([kind], age)
        except Exception:
            pass
        yield kept


class _RecoveryTotals(Collector):
    """What delivery recovery (app.deliveries.recovery) did, read from the database when Prometheus scrapes:
    the sweeping process is a worker, and the web processes answer /metrics."""

    def __init__(self, totals: Callable[[], dict[str, float] | None]) -> None:
        self.totals = totals

    def collect(self):
        try:
            totals = self.totals() or {}
        except Exception:  # the database down: report nothing rather than fail the whole scrape
            return
        for name, key, text in (
            ("draftsmith_recovery_redeliveries", "redeliveries", "Redeliveries of lost deliveries asked of GitHub"),
            ("draftsmith_recovery_failed_again", "failed_again",
             "Lost deliveries whose redelivery failed too (each counted once, left for a person)"),
            ("draftsmith_recovery_rate_limited", "rate_limited", "Recovery sweeps stopped by GitHub's rate limit"),
        ):
            yield CounterMetricFamily(name, text, value=totals.get(key, 0))
        yield GaugeMetricFamily("draftsmith_recovery_last_sweep_timestamp_seconds",
                                "When recovery last listed GitHub's deliveries (0: never)",
                                value=totals.get("checked_at", 0))


class _RelayTotals(Collector):
    """What the webhook relay subscriber (app.relay) did, read from the state file it keeps when Prometheus
    scrapes: it runs in a process of its own, and the web processes answer /metrics. Nothing before it ran."""

    def __init__(self, state: Callable[[], dict | None]) -> None:
        self.state = state

    def collect(self):
        try:
            state = self.state()
        except Exception:
            return
        if not state:
            return
        totals = state.get("totals") or {}
        for key, text in (
            ("relayed", "Deliveries the relay handed to ingress that ingress recorded"),
            ("duplicates", "Deliveries the relay handed to ingress that it already held (redeliveries, resends)"),
            ("refused", "Deliveries ingress refused for good (a bad signature, not JSON)"),
            ("reconnects", "Times the relay's event stream ended or failed and was opened again"),
        ):
            yield CounterMetricFamily(f"draftsmith_relay_{key}", text, value=totals.get(key, 0))
        yield GaugeMetricFamily("draftsmith_relay_connected", "1 while the relay's event stream is open",
                                value=1 if state.get("connected") else 0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "draftsmith_webhook_requests",
            "Webhook requests answered by this process, by event, action and outcome",
            ["event", "action", "outcome"],
            registry=self.registry,
        )
        self.ingress_latency = Histogram(
            "draftsmith_ingress_latency_seconds",
            "Time to verify, record and enqueue a webhook delivery",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.processed = Counter(
            "draftsmith_deliveries_processed",
            "Deliveries processed by this worker process, by event, action and outcome",
            ["event", "action", "outcome"],
            registry=self.registry,
        )

    def watch(self, queue_depths, delivery_counts, oldest_kept=None, recovery_totals=None, relay_state=None) -> None:
        self.registry.register(_ScrapeTimeGauges(queue_depths, delivery_counts, oldest_kept))
        if recovery_totals is not None:
            self.registry.register(_RecoveryTotals(recovery_totals))
        if relay_state is not None:
            self.registry.register(_RelayTotals(relay_state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
