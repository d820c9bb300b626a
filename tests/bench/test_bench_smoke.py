"""The benchmark suite in miniature, so bench/ cannot rot: every part, a few clients, ~1 s.

These assert that real numbers come back (deliveries, latencies, counted round trips), never
how fast anything is: targets are met in `./dev bench`, not in tests.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.backends import Backends
from bench.benchmark_events import benchmark_events
from bench.capacity import capacity
from bench.load_test_sse import Load, measure
from bench.merge import merge
from bench.profile import summarize
from bench.push_vs_poll import push_vs_poll
from bench.scaling import scaling
from bench.storm import run_storm
from support.servers import MongoSource

TINY = Load(duration=1.0, warmup=0.3, settle=0.1, linger=0.2)


@pytest.fixture
def found(mongo: MongoSource, redis_url: str) -> Backends:
    return Backends(mongo.url, redis_url, mongo.process)


def _render(**parts: Any) -> str:
    results = {
        "facts": {"cpu": "test"},
        "command": "test",
        "elapsed_s": 1.0,
        "repeat": 1,
        "embedded": True,
        "push_rate": 20.0,
        **parts,
    }
    return report.render(results)


async def test_load_test_sse_ours_and_the_raw_ceiling(found: Backends) -> None:
    runs = {}
    for server in ("ours", "raw"):
        load = Load(
            clients=4,
            sessions=2,
            rate=100,
            server=server,
            duration=1.0,
            warmup=0.3,
            settle=0.1,
            linger=0.2,
        )
        run = runs[server] = await measure(found, load)
        assert run["connected"] == 4
        assert run["deliveries_per_s"] > 0
        assert run["latency_samples"] > 0
        assert run["latency_ms"]["p99"] > 0
        assert run["server_rss_mb"] > 0
        assert run["errors"] == 0
    assert runs["ours"]["generated_per_s"] > 0
    ceiling = {
        "clients": 4,
        "sessions": 2,
        "offered_events_per_s": 100.0,
        "offered_deliveries_per_s": 200.0,
        "repeat": 1,
        "fraction": 1.0,
        "fractions": [1.0],
        "cpu_fraction": 0.5,
        **{
            name: {
                **{k: run[k] for k in ("deliveries_per_s", "cpu_us_per_delivery", "server_cpu")},
                "client_cpu": run["client_cpu"],
                "server_rss_mb": run["server_rss_mb"],
                "p50_ms": run["latency_ms"]["p50"],
                "p99_ms": run["latency_ms"]["p99"],
            }
            for name, run in runs.items()
        },
    }
    latency = {"config": TINY.__dict__ | {"clients": 4, "sessions": 2}, "runs": [runs["ours"]]}
    latency["median"] = {**runs["ours"], **runs["ours"]["latency_ms"]}
    text = _render(ceiling=ceiling, latency=latency)
    assert "## ceiling" in text
    assert "## load_test_sse" in text


async def test_push_vs_poll_counts_queries_at_each_server(found: Backends) -> None:
    # Database-fed: on a loaded machine the embedded MongoDB needs a longer window than TINY's
    # to carry a few events through each server (the figures asserted are counts, not speeds).
    slower = dataclasses.replace(TINY, warmup=1.0)
    rows = await push_vs_poll(
        found, clients=(2,), sessions=2, rate=20, duration=3.0, template=slower
    )
    by_design = {row["design"]: row for row in rows}
    assert set(by_design) == {"ours/change_stream", "ours/poll", "seed (poll per connection)"}
    for row in rows:
        assert row["deliveries_per_s"] > 0, row["design"]
        assert row["written_per_s"] > 0
    assert by_design["ours/poll"]["db_queries_per_s"] > 0
    assert by_design["ours/change_stream"]["db_getmores_per_s"] > 0
    assert by_design["seed (poll per connection)"]["db_queries_per_s"] > 0
    assert "## push vs the seed" in _render(push_vs_poll=rows)


async def test_capacity_holds_idle_connections(found: Backends) -> None:
    result = await capacity(found, target=20, heartbeat=0.5, template=TINY)
    assert result["connected"] == 20
    assert result["held"] == 20
    assert math.isfinite(result["rss_per_connection_kb"])
    assert "## capacity" in _render(capacity=result)


async def test_benchmark_events_counts_round_trips(found: Backends) -> None:
    result = await benchmark_events(found, 20, queries=3, simulated=30)
    single, coalesced = result["writes"]
    assert single["round_trips"] >= 2 * 20
    assert 0 < coalesced["round_trips"] < single["round_trips"]
    assert all(row["n"] == 3 and row["p50"] > 0 for row in result["queries"])
    assert all(row["round_trips_per_event"] > 0 for row in result["simulated"])
    assert "## benchmark_events" in _render(events=result)


def test_profile_summary_reads_py_spy_raw_output(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "run (/x/app/stream.py:10);_flush (/x/app/stream.py:20) 30\n"
        "run (/x/app/stream.py:10);publish (/x/app/hub.py:5) 10\n"
    )
    samples, hotspots = summarize(raw)
    assert samples == 40
    assert hotspots[0].function == "_flush (/x/app/stream.py)"
    assert hotspots[0].self_share == pytest.approx(0.75)


async def test_the_storm_part(found: Backends) -> None:
    result = await run_storm(found, clients=20, cap=10, within=0.2)
    assert (result["accepted"], result["over_capacity"]) == (10, 10)
    assert result["open_after"] == 0
    assert result["healthz_probes"] > 0
    text = _render(storm=result)
    assert "## storm" in text
    assert "10 streamed, 10 got 503" in text


async def test_scaling_runs_one_and_two_processes_and_the_baseline(found: Backends) -> None:
    result = await scaling(
        found, clients=8, sessions=2, rate=100, duration=1.0, repeat=1, template=TINY
    )
    for name, run in result["median"].items():
        assert run["deliveries_per_s"] > 0, name
        assert run["server_cpu"] > 0, name
    assert result["speedup"] > 0
    [two] = result["runs"]["2 processes"]
    assert two["connected"] == 8
    assert two["errors"] == 0
    text = _render(scaling=result)
    assert "## scaling: one API process against two" in text
    assert "## Targets (issue 16)" in text


def test_merge_replaces_only_the_merged_parts() -> None:
    def run(p99: float) -> dict[str, Any]:
        return {
            "deliveries_per_s": 100.0,
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": p99, "max": p99},
            "server_cpu": 0.5,
            "cpu_us_per_delivery": 3.0,
            "server_rss_mb": 50.0,
            "client_cpu": 0.2,
            "reconnects": 0,
            "errors": 0,
        }

    def latency(per: int, p99: float) -> dict[str, Any]:
        config = TINY.__dict__ | {"clients": 10 * per, "sessions": 10, "rate": 100.0}
        return {"config": config, "runs": [run(p99)], "median": {**run(p99), "p99": p99}}

    before = _render(latency={**latency(10, 1.5), "variants": [latency(100, 99.0)]})
    assert "99.0 ms with 100 per session" in before
    merged = merge(before, {"latency": latency(100, 7.5)}, "./dev bench load_test_sse --merge")
    assert "| run 1 | 100 | 1.0 | 2.0 | 1.5 |" in merged  # the 10-per-session run is kept
    assert "| 99.0 |" not in merged  # the 100-per-session table is the new one
    assert "| run 1 | 100 | 1.0 | 2.0 | 7.5 |" in merged
    assert "7.5 ms with 100 per session (issue-16 rerun)" in merged
    assert "## Targets (issue 16)" in merged
    assert "Merged: `./dev bench load_test_sse --merge`" in merged
    assert merged.count("## load_test_sse") == 1
