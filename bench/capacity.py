"""capacity: how many idle SSE connections one API process holds, and the RSS each costs.

One server process (ours; no events, SSE_HEARTBEAT=5 so heartbeats flow) and client
processes that open `target` connections, one session each (the costliest case for the
hub), and hold them for a window longer than a heartbeat interval. Held = connections that
received a heartbeat in the window. RSS per connection = (RSS with them - RSS before) / held.
Both sides raise RLIMIT_NOFILE to the hard limit first.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bench.backends import Backends
from bench.load_test_sse import Load, measure
from bench.procs import raise_nofile

logger = logging.getLogger(__name__)


async def capacity(
    backends: Backends,
    *,
    target: int = 10_000,
    heartbeat: float = 5.0,
    client_procs: int = 2,
    template: Load | None = None,
) -> dict[str, Any]:
    soft, hard = raise_nofile()
    logger.info("capacity: %d idle connections (RLIMIT_NOFILE %d/%d)", target, soft, hard)
    load = dataclasses.replace(
        template or Load(),
        clients=target,
        sessions=target,
        rate=0.0,
        duration=heartbeat + 2.0,
        warmup=1.0,
        heartbeat=heartbeat,
        client_procs=client_procs,
    )
    run = await measure(backends, load)
    held = run["with_heartbeat"]
    grown = run["server_rss_mb"] - run["server_rss_idle_mb"]
    return {
        "target": target,
        "heartbeat_s": heartbeat,
        "nofile_soft": soft,
        "nofile_hard": hard,
        "client_procs": client_procs,
        "connected": run["connected"],
        "held": held,
        "subscribers": run["subscribers"],
        "rss_idle_mb": run["server_rss_idle_mb"],
        "rss_mb": run["server_rss_mb"],
        "rss_per_connection_kb": grown * 1024 / held if held else float("nan"),
        "server_cpu": run["server_cpu"],
        "errors": run["errors"],
        "error_samples": run["error_samples"],
    }
