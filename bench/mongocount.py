"""Counting database commands with PyMongo command monitoring (one listener per client)."""

from __future__ import annotations

import collections

from pymongo import monitoring

READS = ("find", "aggregate", "getMore")


class CommandCounter(monitoring.CommandListener):
    """Counts every command the client starts, as "<command>:<collection>"."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get("collection" if name == "getMore" else name)
        self.counts[f"{name}:{target}" if isinstance(target, str) else name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None

    def total(self) -> int:
        return sum(self.counts.values())

    def reads(self, collection: str = "events") -> int:
        """find, aggregate and getMore commands on `collection` (the live path's queries)."""
        return sum(self.counts[f"{name}:{collection}"] for name in READS)

    def queries(self, collection: str = "events") -> int:
        """find and aggregate commands on `collection` (a poll, or opening a change stream)."""
        return self.counts[f"find:{collection}"] + self.counts[f"aggregate:{collection}"]

    def stats(self) -> dict[str, object]:
        """What /bench-stats reports about the database."""
        return {
            "commands": self.snapshot(),
            "reads": self.reads(),
            "queries": self.queries(),
            "getmores": self.counts["getMore:events"],
        }

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
