"""Small statistics helpers: percentiles, medians of repeated runs, ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def latency_summary(values_us: Iterable[int]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in microseconds."""
    ordered = sorted(values_us)
    return {
        "n": float(len(ordered)),
        "p50": percentile(ordered, 0.50) / 1000,
        "p95": percentile(ordered, 0.95) / 1000,
        "p99": percentile(ordered, 0.99) / 1000,
        "max": (ordered[-1] / 1000) if ordered else math.nan,
    }


def median(values: Iterable[float]) -> float:
    found = [v for v in values if not math.isnan(v)]
    return statistics.median(found) if found else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def median_of(runs: Sequence[dict[str, float]], key: str) -> float:
    return median(run[key] for run in runs if key in run)
