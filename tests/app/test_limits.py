"""The limit objects on their own: stream slots, token buckets (with a clock the test
advances), subjects, Retry-After, bounded metric labels and the new settings."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from app.errors import OverCapacity, PayloadTooLarge, RateLimited, TooManyStreams, retry_after
from app.limits import StreamSlots, WriteRateLimiter, subject_of
from app.metrics import KNOWN_EVENT_TYPES, Metrics, WorkerMetrics
from app.settings import Settings, SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_slots_refuse_over_either_cap_and_come_back_on_release() -> None:
    metrics = Metrics()
    slots = StreamSlots(3, 2, metrics=metrics)
    a1, a2 = slots.reserve("a"), slots.reserve("a")
    with pytest.raises(TooManyStreams) as per_subject:
        slots.reserve("a")
    assert per_subject.value.retry_after is not None
    b1 = slots.reserve("b")
    with pytest.raises(OverCapacity):
        slots.reserve("c")
    assert (slots.open, slots.held("a"), slots.subjects) == (3, 2, 2)
    a1.release()
    a1.release()  # twice is harmless
    assert slots.open == 2
    with b1:
        pass
    assert (slots.open, slots.subjects) == (1, 1)
    with slots.reserve("c"), pytest.raises(RuntimeError):
        raise RuntimeError("a stream that fails still gives its slot back")
    a2.release()
    assert (slots.open, slots.subjects) == (0, 0)
    assert metrics.sse_connections._value.get() == 0
    assert metrics.limit_rejections.labels("over_capacity")._value.get() == 1
    assert metrics.limit_rejections.labels("too_many_streams")._value.get() == 1


def test_a_bucket_bursts_twice_the_rate_and_a_refused_write_spends_nothing() -> None:
    clock = Clock()
    limiter = WriteRateLimiter(5.0, clock=clock)
    limiter.take("a", 10)  # the burst
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", 3)
    assert refused.value.retry_after == pytest.approx(0.6)
    clock.now += 0.6  # 3 tokens back; the refused write took none
    limiter.take("a", 3)
    limiter.take("b", 10)  # another subject, its own bucket
    with pytest.raises(PayloadTooLarge):
        limiter.take("c", 11)  # more than a whole bucket could ever hold


def test_full_buckets_are_forgotten_and_memory_has_a_ceiling() -> None:
    clock = Clock()
    limiter = WriteRateLimiter(1.0, clock=clock, max_subjects=3)
    for subject in "abc":
        limiter.take(subject, 1)
    assert limiter.subjects == 3
    limiter.take("d", 1)  # the oldest goes, even though it has not refilled
    assert limiter.subjects == 3
    clock.now += 1.0  # every bucket refilled: the same as having none
    limiter.take("e", 1)
    assert limiter.subjects == 1


def test_a_zero_rate_is_no_limit() -> None:
    limiter = WriteRateLimiter(0.0)
    for _ in range(100):
        limiter.take("a", 1000)
    assert not limiter.enabled
    assert limiter.subjects == 0


def test_the_subject_is_the_token_sub_else_the_client_address() -> None:
    assert subject_of({"client": ("10.0.0.1", 5000)}) == "addr:10.0.0.1"
    assert subject_of({"agentstream.subject": "alice", "client": ("10.0.0.1", 1)}) == "sub:alice"
    assert subject_of({"agentstream.subject": "10.0.0.1"}) != subject_of(
        {"client": ("10.0.0.1", 1)}
    )
    assert subject_of({}) == "addr:unknown"


def test_retry_after_is_whole_seconds_of_at_least_one() -> None:
    assert [retry_after(s) for s in (0.0, 0.2, 1.0, 1.01, 7.9)] == [1, 1, 1, 2, 8]


def test_client_chosen_event_types_share_one_series() -> None:
    metrics = Metrics(CollectorRegistry())
    docs = [{"type": f"custom.{i}"} for i in range(1000)] + [{"type": "run.started"}]
    metrics.observe_insert(docs, 0.001)
    series = {
        s.labels["type"]
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == "agentstream_events_created_total"
    }
    assert series == {"other", "run.started"}
    assert "run.queued" in KNOWN_EVENT_TYPES


def test_worker_labels_from_jobs_are_bounded() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    for i in range(500):
        metrics.observe_run(f"agent{i}", "failed", 1.0, f"Error{i}")
    agents = {
        s.labels["agent"]
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == "agentstream_runs_total"
    }
    assert len(agents) <= 51
    assert "other" in agents


def test_limit_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "MAX_BODY_BYTES": "2048",
            "SSE_MAX_CONNECTIONS": "5",
            "SSE_MAX_CONNECTIONS_PER_SUBJECT": "2",
            "WRITE_RATE_LIMIT": "2.5",
            "REQUEST_TIMEOUT": "3",
            "HEADER_TIMEOUT": "4",
            "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 127.0.0.1",
        }
    )
    assert (settings.max_body_bytes, settings.sse_max_connections) == (2048, 5)
    assert (settings.sse_max_connections_per_subject, settings.write_rate_limit) == (2, 2.5)
    assert (settings.request_timeout, settings.header_timeout) == (3.0, 4.0)
    assert settings.forwarded_allow_ips == ("10.0.0.0/8", "127.0.0.1")
    defaults = Settings.from_env({})
    assert (defaults.max_body_bytes, defaults.sse_max_connections) == (1048576, 10000)
    assert (defaults.sse_max_connections_per_subject, defaults.write_rate_limit) == (100, 0.0)
    assert defaults.request_timeout == 10.0
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": "not-an-address"})
    with pytest.raises(SettingsError, match="SSE_MAX_CONNECTIONS"):
        Settings.from_env({"SSE_MAX_CONNECTIONS": "0"})
