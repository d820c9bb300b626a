"""Prometheus metrics of one API process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from app.store.codec import Document

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SUBSCRIBER_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)

# Label values are never taken from clients unchecked (each would be a new series): event types
# outside this list count as "other"; agents outside the registry as "other".
KNOWN_EVENT_TYPES = frozenset(
    {
        "run.queued",
        "run.started",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "run.timed_out",
        "message.delta",
        "message.completed",
    }
)
OTHER = "other"


def type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_EVENT_TYPES else OTHER


class _SubscriberDistribution(Collector):
    """Subscribers per session as a histogram, computed at scrape time from the hub."""

    def __init__(self, counts: Callable[[], Sequence[int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        counts = self._counts()
        buckets = [(str(b), float(sum(1 for c in counts if c <= b))) for b in SUBSCRIBER_BUCKETS]
        buckets.append(("+Inf", float(len(counts))))
        family = HistogramMetricFamily(
            "agentstream_session_subscribers",
            "Subscribers per watched session (one observation per session)",
        )
        family.add_metric([], buckets, sum_value=float(sum(counts)))
        yield family


class WriterMetrics:
    """What every process that writes events exposes: the API and each worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_created = Counter(
            "agentstream_events_created",
            "Events stored, by type (the service's own types; any other is 'other')",
            ["type"],
            registry=r,
        )
        self.insert_seconds = Histogram(
            "agentstream_event_insert_seconds",
            "Event insert latency",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def observe_insert(self, docs: Sequence[Document], seconds: float) -> None:
        self.insert_seconds.observe(seconds)
        for doc in docs:
            self.events_created.labels(type_label(doc["type"])).inc()


class BoundedLabel:
    """A label whose values come from outside the code (agent names in jobs, error types):
    the first `limit` distinct values are kept, any later one is "other"."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


MAX_AGENT_LABELS = 50
MAX_REASON_LABELS = 50


class WorkerMetrics(WriterMetrics):
    """A worker's metrics: its writes and the runs it ended."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self._agent_label = BoundedLabel(MAX_AGENT_LABELS)
        self._reason_label = BoundedLabel(MAX_REASON_LABELS)
        self.runs = Counter(
            "agentstream_runs", "Runs ended, by agent and status", ["agent", "status"], registry=r
        )
        self.run_seconds = Histogram(
            "agentstream_run_duration_seconds",
            "Run duration from start to end, by agent",
            ["agent"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.run_failures = Counter(
            "agentstream_run_failures",
            "Runs that did not succeed, by agent and reason (error type, timed_out, cancelled)",
            ["agent", "reason"],
            registry=r,
        )
        self.runs_reconciled = Counter(
            "agentstream_runs_reconciled",
            "Runs that no live worker owned, ended by the reconciler, by status",
            ["status"],
            registry=r,
        )

    def observe_run(
        self, agent: str, status: str, seconds: float | None, reason: str | None
    ) -> None:
        agent = self._agent_label(agent)
        self.runs.labels(agent, status).inc()
        if seconds is not None:
            self.run_seconds.labels(agent).observe(seconds)
        if reason is not None:
            self.run_failures.labels(agent, self._reason_label(reason)).inc()


class Metrics(WriterMetrics):
    """An API process's metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.query_seconds = Histogram(
            "agentstream_event_query_seconds",
            "Event query latency, by query",
            ["query"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sse_connections = Gauge(
            "agentstream_sse_connections", "Open SSE connections", registry=r
        )
        self.deliveries = Counter(
            "agentstream_sse_deliveries", "Events written to SSE clients", registry=r
        )
        self.feed_mode = Gauge(
            "agentstream_feed_mode", "1 for the feed mode in use", ["mode"], registry=r
        )
        self.feed_lag = Histogram(
            "agentstream_feed_lag_seconds",
            "Event timestamp to publication by the feed",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.poll_queries = Counter(
            "agentstream_poll_queries", "Queries made by the polling feed", registry=r
        )
        self.change_stream_resumes = Counter(
            "agentstream_change_stream_resumes",
            "Change stream reopenings, by reason",
            ["reason"],
            registry=r,
        )
        self.slow_client_disconnects = Counter(
            "agentstream_slow_client_disconnects",
            "Streams ended because the client fell behind",
            registry=r,
        )
        self.auth_denials = Counter(
            "agentstream_auth_denials",
            "Requests refused by access control, by answer (unauthorized, forbidden, not_found)",
            ["code"],
            registry=r,
        )
        self.history_lost = Counter(
            "agentstream_history_lost", "Streams told that their position had expired", registry=r
        )
        self.gap_fills = Counter(
            "agentstream_gap_fills",
            "Overdue positions read or voided, by outcome",
            ["outcome"],
            registry=r,
        )
        self.collection_size = Gauge(
            "agentstream_collection_size_bytes",
            "Collection data size (collStats)",
            ["collection"],
            registry=r,
        )
        self.queue_length = Gauge(
            "agentstream_queue_length", "Runs waiting in the ARQ queue", registry=r
        )
        self.collection_count = Gauge(
            "agentstream_collection_documents",
            "Collection document count (collStats)",
            ["collection"],
            registry=r,
        )

        self.sse_connection_limit = Gauge(
            "agentstream_sse_connection_limit",
            "Open streams this process allows (SSE_MAX_CONNECTIONS)",
            registry=r,
        )
        self.sse_subjects = Gauge(
            "agentstream_sse_subjects", "Subjects holding at least one open stream", registry=r
        )
        self.rate_limit_subjects = Gauge(
            "agentstream_rate_limit_subjects",
            "Subjects whose write-rate bucket is not full (held in memory)",
            registry=r,
        )
        self.limit_rejections = Counter(
            "agentstream_limit_rejections",
            "Requests refused by a limit, by error code: payload_too_large, over_capacity,"
            " too_many_streams, rate_limited",
            ["code"],
            registry=r,
        )
        self.unavailable = Counter(
            "agentstream_unavailable",
            "Requests answered 503 unavailable, by the backend that failed (mongo, redis)",
            ["dependency"],
            registry=r,
        )
        self.header_timeouts = Counter(
            "agentstream_header_timeouts",
            "Connections closed because their request headers took over HEADER_TIMEOUT",
            registry=r,
        )

    def watch_hub(self, counts: Callable[[], Sequence[int]]) -> None:
        self.registry.register(_SubscriberDistribution(counts))

    def observe_query(self, query: str, seconds: float) -> None:
        self.query_seconds.labels(query).observe(seconds)
