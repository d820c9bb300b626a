"""Limits of one API process: request bodies, open streams, write rates and request time.

Each limit is an object with its metrics, decided in one place (see README, "Limits and
failure answers"):

- `BodyLimitMiddleware` (body.py): MAX_BODY_BYTES, 413 `payload_too_large`.
- `StreamSlots` (streams.py): SSE_MAX_CONNECTIONS (503 `over_capacity`) and
  SSE_MAX_CONNECTIONS_PER_SUBJECT (429 `too_many_streams`).
- `WriteRateLimiter` (rate.py): WRITE_RATE_LIMIT, 429 `rate_limited`.
- `DeadlineMiddleware` (deadline.py): REQUEST_TIMEOUT for every MongoDB operation of a request.
- `header_timeout_protocol` (headers.py): HEADER_TIMEOUT for a request's headers (slowloris).

The subject of a per-subject limit is `subject_of(scope)` (subject.py).
"""

from app.limits.body import BodyLimitMiddleware
from app.limits.deadline import DeadlineMiddleware
from app.limits.rate import TokenBucket, WriteRateLimiter
from app.limits.streams import Slot, StreamSlots
from app.limits.subject import SUBJECT_KEY, subject_of

__all__ = [
    "SUBJECT_KEY",
    "BodyLimitMiddleware",
    "DeadlineMiddleware",
    "Slot",
    "StreamSlots",
    "TokenBucket",
    "WriteRateLimiter",
    "subject_of",
]
