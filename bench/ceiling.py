"""ceiling: our deliveries/s as a fraction of a raw asyncio server's, side by side.

The raw server (bench/raw_server.py) writes the same pre-framed SSE bytes, generated the same
way at the same offered rate, to the same clients. The two alternate, `repeat` times each, and
the medians are compared. Two ratios: delivered events/s (the issue's figure; when both keep
up with the offered rate it is 1 and says nothing, so the offered rate is set above what ours
delivers), and server CPU per delivery (how far each would go on a whole core). The client
times only the oldest event of each socket read here, to stay cheaper than the servers; its
CPU is reported, since a saturated client caps both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.backends import Backends
from bench.load_test_sse import Load, measure
from bench.stats import median, ratio

logger = logging.getLogger(__name__)


async def ceiling(
    backends: Backends,
    *,
    clients: int = 1000,
    sessions: int = 10,
    rate: float = 4000.0,
    duration: float = 10.0,
    repeat: int = 3,
    profile: Path | None = None,
) -> dict[str, Any]:
    logger.info("ceiling: ours vs raw asyncio, %d clients, offered %g events/s", clients, rate)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "raw": []}
    for _ in range(repeat):
        for server in ("ours", "raw"):
            load = Load(
                clients=clients,
                sessions=sessions,
                rate=rate,
                duration=duration,
                server=server,
                latency="first",
            )
            runs[server].append(await measure(backends, load))
    fractions = [
        ratio(o["deliveries_per_s"], r["deliveries_per_s"])
        for o, r in zip(runs["ours"], runs["raw"], strict=True)
    ]
    summary: dict[str, Any] = {
        "clients": clients,
        "sessions": sessions,
        "offered_events_per_s": rate,
        "offered_deliveries_per_s": rate * clients / sessions,
        "repeat": repeat,
        "fraction": median(fractions),
        "fractions": fractions,
    }
    for server, found in runs.items():
        summary[server] = {
            key: median(run[key] for run in found)
            for key in (
                "deliveries_per_s",
                "cpu_us_per_delivery",
                "server_cpu",
                "client_cpu",
                "server_rss_mb",
                "reconnects",
                "errors",
            )
        }
        summary[server]["p99_ms"] = median(run["latency_ms"]["p99"] for run in found)
        summary[server]["p50_ms"] = median(run["latency_ms"]["p50"] for run in found)
    summary["cpu_fraction"] = ratio(
        summary["raw"]["cpu_us_per_delivery"], summary["ours"]["cpu_us_per_delivery"]
    )
    if profile is not None:
        load = Load(
            clients=clients, sessions=sessions, rate=rate, duration=duration, latency="first"
        )
        logger.info("ceiling: one more run of ours under py-spy (not in the medians)")
        summary["profiled"] = await measure(backends, load, profile=profile)
        summary["profile"] = str(profile)
    return summary
