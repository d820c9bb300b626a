"""Caps on open streams: SSE_MAX_CONNECTIONS per process, SSE_MAX_CONNECTIONS_PER_SUBJECT per
subject and process.

A stream reserves its `Slot` before its response starts, so an over-cap client gets its 503
or 429 instead of a 200, and nothing is read from the database for it. The slot is a context
manager: the stream holds it for its whole life and releases it in `finally`, whatever ends
it (the client leaving, SSE_TIMEOUT, a slow consumer, shutdown, an outage, an exception).
Releasing twice is harmless. Memory is one dict entry per subject that holds a stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import OverCapacity, TooManyStreams

if TYPE_CHECKING:
    from types import TracebackType

    from app.metrics import Metrics

STREAM_RETRY_AFTER = 5  # seconds: streams end and free slots all the time


class Slot:
    """One open stream's place under the caps."""

    __slots__ = ("_owner", "_released", "subject")

    def __init__(self, owner: StreamSlots, subject: str) -> None:
        self._owner = owner
        self.subject = subject
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self.subject)

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class StreamSlots:
    def __init__(self, limit: int, per_subject: int, *, metrics: Metrics | None = None) -> None:
        if limit < 1 or per_subject < 1:
            raise ValueError("stream caps must be at least 1")
        self.limit = limit
        self.per_subject = per_subject
        self._metrics = metrics
        self._open = 0
        self._held: dict[str, int] = {}
        if metrics is not None:
            metrics.sse_connection_limit.set(limit)

    @property
    def open(self) -> int:
        return self._open

    def held(self, subject: str) -> int:
        return self._held.get(subject, 0)

    @property
    def subjects(self) -> int:
        return len(self._held)

    def reserve(self, subject: str) -> Slot:
        """A slot for one more stream of `subject`; OverCapacity or TooManyStreams when full."""
        if self._open >= self.limit:
            self._rejected(OverCapacity.code)
            raise OverCapacity(
                f"this server holds its maximum of {self.limit} streams (SSE_MAX_CONNECTIONS);"
                " retry after the delay given",
                retry_after=STREAM_RETRY_AFTER,
            )
        held = self._held.get(subject, 0)
        if held >= self.per_subject:
            self._rejected(TooManyStreams.code)
            raise TooManyStreams(
                f"you hold {held} open streams on this server, the maximum"
                " (SSE_MAX_CONNECTIONS_PER_SUBJECT); close one or retry after the delay given",
                retry_after=STREAM_RETRY_AFTER,
            )
        self._held[subject] = held + 1
        self._open += 1
        self._changed()
        return Slot(self, subject)

    def _release(self, subject: str) -> None:
        held = self._held.get(subject, 0)
        if held <= 1:
            self._held.pop(subject, None)
        else:
            self._held[subject] = held - 1
        self._open -= 1
        self._changed()

    def _changed(self) -> None:
        if self._metrics is not None:
            self._metrics.sse_connections.set(self._open)
            self._metrics.sse_subjects.set(len(self._held))

    def _rejected(self, code: str) -> None:
        if self._metrics is not None:
            self._metrics.limit_rejections.labels(code).inc()
