"""push_vs_poll: our push design against the seed's per-connection polling, same database.

At each client count (1, 100, 1,000) three servers run in turn against the same MongoDB,
each on a fresh database, with the same writer process appending events through
`EventWriter` at the same rate: ours with the change stream, ours with its one polling loop
(SSE_FEED=poll), and the seed's peer (bench/seed_peer.py), where every connection polls.
Queries are counted in each server process with PyMongo command monitoring: "queries" are
find and aggregate commands on `events`, "getMores" the change stream's (and cursors')
follow-up fetches. Catch-up on connect happens before the measured window.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bench.backends import Backends
from bench.load_test_sse import Load, measure
from bench.stats import ratio

logger = logging.getLogger(__name__)

PEERS = (("ours", "change_stream"), ("ours", "poll"), ("seed", "synthetic"))


async def push_vs_poll(
    backends: Backends,
    *,
    clients: tuple[int, ...] = (1, 100, 1000),
    sessions: int = 10,
    rate: float = 20.0,
    duration: float = 10.0,
    template: Load | None = None,
) -> list[dict[str, Any]]:
    """One row per (client count, server); `template` carries the other Load knobs."""
    logger.info("push_vs_poll: %s clients, %g events/s over %d sessions", clients, rate, sessions)
    rows: list[dict[str, Any]] = []
    for count in clients:
        runs = {}
        for server, feed in PEERS:
            load = dataclasses.replace(
                template or Load(),
                clients=count,
                sessions=min(count, sessions),
                rate=rate,
                duration=duration,
                server=server,
                feed=feed,
            )
            runs[f"{server}/{feed}"] = await measure(backends, load)
        seed = runs["seed/synthetic"]
        for name, run in runs.items():
            run["design"] = "seed (poll per connection)" if name.startswith("seed") else name
            run["seed_reads_ratio"] = ratio(seed["db_reads_per_s"], run["db_reads_per_s"])
            run["demanded_polls_per_s"] = count / 0.5 if name.startswith("seed") else None
            rows.append(run)
    return rows
