"""scaling: one API process against two on the same port, and the delivery path before/after.

Three configurations of our server, in alternating rounds so that the machine's other work
falls on each alike: `--workers 1` and `--workers 2` (app/supervisor.py; each process with its
own in-process feed generating every session's events, as each would read the whole change
stream), and `--workers 1 --no-direct`: every frame through ASGI send, the delivery path
before the hub's direct writes, as the baseline of the same run. CPU is the server's process
tree (the supervisor and its children); the load client's CPU is shown beside it, because on
a 2-core machine the client competes with the servers for the same cores.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from bench.backends import Backends
from bench.load_test_sse import Load, measure
from bench.stats import median

logger = logging.getLogger(__name__)

CONFIGS = {"1 process": (1, True), "2 processes": (2, True), "1 process, ASGI send": (1, False)}
KEYS = ("deliveries_per_s", "server_cpu", "cpu_us_per_delivery", "client_cpu", "server_rss_mb")


async def scaling(
    found: Backends,
    *,
    clients: int,
    sessions: int,
    rate: float,
    duration: float,
    repeat: int,
    template: Load | None = None,
) -> dict[str, Any]:
    base = dataclasses.replace(
        template or Load(), clients=clients, sessions=sessions, rate=rate, duration=duration
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    load_average: list[float] = []
    for round_ in range(repeat):
        for name, (workers, direct) in CONFIGS.items():
            logger.info("scaling: round %d, %s", round_ + 1, name)
            load = dataclasses.replace(base, workers=workers, direct=direct)
            run = await measure(found, load)
            run["load_average"] = os.getloadavg()[0]
            load_average.append(run["load_average"])
            runs[name].append(run)
    medians = {}
    for name, taken in runs.items():
        middle = {key: median(run[key] for run in taken) for key in KEYS}
        for key in ("p50", "p99"):
            middle[key] = median(run["latency_ms"][key] for run in taken)
        medians[name] = middle
    one, two = medians["1 process"], medians["2 processes"]
    return {
        "config": dataclasses.asdict(base),
        "runs": runs,
        "median": medians,
        "speedup": two["deliveries_per_s"] / one["deliveries_per_s"],
        "speedups": [
            b["deliveries_per_s"] / a["deliveries_per_s"]
            for a, b in zip(runs["1 process"], runs["2 processes"], strict=True)
        ],
        "cores": len(os.sched_getaffinity(0)),
        "load_average": median(load_average),
    }
