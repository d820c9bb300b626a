"""WRITE_RATE_LIMIT: a token bucket per subject per process.

Each subject's bucket holds up to twice the rate (at least one event) and refills at the rate.
A write of n events (a batch counts each) takes n tokens or, when fewer are there, is refused
with 429 `rate_limited` and takes none; `Retry-After` says when n tokens will be there. A
batch larger than a whole bucket could never pass: 413 `payload_too_large` says so instead.

Memory stays bounded: a bucket that has refilled is the same as no bucket, so buckets are
kept in the order they were last used and full ones are dropped from the front on every
write. What remains are subjects that wrote within the last `burst / rate` seconds, and never
more than `max_subjects` (the oldest go first).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.errors import PayloadTooLarge, RateLimited

if TYPE_CHECKING:
    from app.metrics import Metrics

MAX_SUBJECTS = 100_000


class TokenBucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated

    def level(self, now: float, rate: float, burst: float) -> float:
        return min(burst, self.tokens + (now - self.updated) * rate)


class WriteRateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        max_subjects: int = MAX_SUBJECTS,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        if rate < 0 or max_subjects < 1:
            raise ValueError("rate must be >= 0 and max_subjects >= 1")
        self.rate = rate
        self.burst = max(2.0 * rate, 1.0)
        self._max_subjects = max_subjects
        self._clock = clock
        self._metrics = metrics
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def subjects(self) -> int:
        """Buckets held: subjects whose bucket has not refilled yet."""
        return len(self._buckets)

    def take(self, subject: str, count: int) -> None:
        """Spend `count` tokens of `subject`, or raise RateLimited and spend none."""
        if not self.enabled or count <= 0:
            return
        if count > self.burst:
            self._rejected(PayloadTooLarge.code)
            raise PayloadTooLarge(
                f"{count} events in one request are more than WRITE_RATE_LIMIT allows at once"
                f" ({int(self.burst)}); send at most that many per request"
            )
        now = self._clock()
        self._evict(now)
        bucket = self._buckets.get(subject)
        level = self.burst if bucket is None else bucket.level(now, self.rate, self.burst)
        if level < count:
            self._rejected(RateLimited.code)
            raise RateLimited(
                f"over the write rate limit of {self.rate:g} events/s (WRITE_RATE_LIMIT);"
                " retry after the delay given",
                retry_after=(count - level) / self.rate,
            )
        if bucket is None:
            self._buckets[subject] = TokenBucket(level - count, now)
        else:
            bucket.tokens, bucket.updated = level - count, now
            self._buckets.move_to_end(subject)
        self._observe()

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.level(now, self.rate, self.burst) < self.burst:
                break
            buckets.popitem(last=False)
        while len(buckets) >= self._max_subjects:
            buckets.popitem(last=False)

    def _observe(self) -> None:
        if self._metrics is not None:
            self._metrics.rate_limit_subjects.set(len(self._buckets))

    def _rejected(self, code: str) -> None:
        if self._metrics is not None:
            self._metrics.limit_rejections.labels(code).inc()
