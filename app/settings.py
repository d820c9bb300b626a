"""One frozen settings object, built from the environment in the entry points only."""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot accept."""

    def __init__(self, variable: str, value: str, accepts: str) -> None:
        shown = value if len(value) <= 40 else value[:37] + "..."
        super().__init__(f"{variable}={shown!r} is invalid: {variable} accepts {accepts}")
        self.variable = variable


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class FeedMode(enum.StrEnum):
    AUTO = "auto"
    CHANGE_STREAM = "change_stream"
    POLL = "poll"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DB_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
MAX_API_WORKERS = 256
_AGENT_SPEC = re.compile(r"^[a-z][a-z0-9_-]{0,63}=[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    mongo_url: Secret | None = None
    mongo_db: str = "agentstream"
    redis_url: Secret | None = None
    sse_feed: FeedMode = FeedMode.AUTO
    sse_poll_interval: float = 0.5
    sse_batch_size: int = 100
    sse_timeout: float = 300.0
    sse_heartbeat: float = 15.0
    sse_buffer_events: int = 1000
    sse_retry_ms: int = 2000
    sse_gap_timeout: float = 3.0
    sse_send_timeout: float = 10.0
    event_retention_days: int = 7
    message_retention_days: int = 30
    event_max_bytes: int = 64 * 1024
    worker_concurrency: int = 4
    job_time_limit: float = 600.0
    job_max_tries: int = 3
    worker_metrics_port: int = 9101
    emit_flush_interval: float = 0.005
    emit_flush_events: int = 64
    shutdown_grace: float = 10.0
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: Secret | None = None
    openai_model: str = "gpt-4o-mini"
    agents: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    api_workers: int = 1
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    migrate_on_startup: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: os.environ); raise SettingsError on bad input."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variable, parse) in _PARSERS.items():
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            values[name] = parse(variable, raw.strip())
        return cls(**values)

    def describe(self) -> dict[str, object]:
        """Every setting, secrets redacted: for start-up logs and `app stats`."""
        shown: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("mongo_url", "redis_url"):
                value = redact_url(value.get()) if value is not None else "embedded"
            elif isinstance(value, Secret):
                value = "**********"
            shown[field.name] = value
        return shown


def _number[T: (int, float)](
    kind: Callable[[str], T], low: T, high: T | None = None, *, low_open: bool = False
) -> Callable[[str, str], T]:
    def parse(variable: str, raw: str) -> T:
        bound = f"> {low}" if low_open else f">= {low}"
        accepts = f"a number {bound}" + (f" and <= {high}" if high is not None else "")
        if kind is int:
            accepts = accepts.replace("a number", "a whole number")
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(variable, raw, accepts) from None
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high) or value != value:  # NaN
            raise SettingsError(variable, raw, accepts)
        return value

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], Secret]:
    def parse(variable: str, raw: str) -> Secret:
        accepts = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)
        try:
            parts = urlsplit(raw)
        except ValueError:
            raise SettingsError(variable, redact_url(raw), accepts) from None
        if parts.scheme not in schemes or not parts.netloc:
            raise SettingsError(variable, redact_url(raw), accepts)
        return Secret(raw)

    return parse


def _choice[E: enum.StrEnum](kind: type[E]) -> Callable[[str, str], E]:
    def parse(variable: str, raw: str) -> E:
        try:
            return kind(raw.lower())
        except ValueError:
            raise SettingsError(variable, raw, " or ".join(m.value for m in kind)) from None

    return parse


def _bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(variable, raw, "true or false")


def _log_level(variable: str, raw: str) -> str:
    if raw.upper() not in _LOG_LEVELS:
        raise SettingsError(variable, raw, ", ".join(_LOG_LEVELS))
    return raw.upper()


def _db_name(variable: str, raw: str) -> str:
    if not _DB_NAME.match(raw):
        raise SettingsError(variable, raw, "1-63 characters from [A-Za-z0-9_-]")
    return raw


def _text(variable: str, raw: str) -> str:
    if len(raw) > 512 or any(ord(c) < 32 for c in raw):
        raise SettingsError(variable, raw, "printable text of at most 512 characters")
    return raw


def _http_url(variable: str, raw: str) -> str:
    return _url(("http", "https"))(variable, raw).get()


def _secret(variable: str, raw: str) -> Secret:
    return Secret(raw)


def parse_workers(variable: str, raw: str) -> int:
    """A count of API processes, or `auto`: the cores this process may run on."""
    if raw.lower() == "auto":
        return len(os.sched_getaffinity(0))
    if raw.isdigit() and 1 <= int(raw) <= MAX_API_WORKERS:
        return int(raw)
    raise SettingsError(variable, raw, f"`auto` or a whole number from 1 to {MAX_API_WORKERS}")


def _agents(variable: str, raw: str) -> tuple[str, ...]:
    specs = tuple(part.strip() for part in raw.split(",") if part.strip())
    for spec in specs:
        if not _AGENT_SPEC.match(spec):
            raise SettingsError(
                variable, raw, "a comma-separated list of name=package.module:callable"
            )
    return specs


_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "mongo_url": ("MONGO_URL", _url(("mongodb", "mongodb+srv"))),
    "mongo_db": ("MONGO_DB", _db_name),
    "redis_url": ("REDIS_URL", _url(("redis", "rediss", "unix"))),
    "sse_feed": ("SSE_FEED", _choice(FeedMode)),
    "sse_poll_interval": ("SSE_POLL_INTERVAL", _number(float, 0.0, 60.0, low_open=True)),
    "sse_batch_size": ("SSE_BATCH_SIZE", _number(int, 1, 10_000)),
    "sse_timeout": ("SSE_TIMEOUT", _number(float, 0.0, 86_400.0)),
    "sse_heartbeat": ("SSE_HEARTBEAT", _number(float, 0.0, 3_600.0, low_open=True)),
    "sse_buffer_events": ("SSE_BUFFER_EVENTS", _number(int, 1, 1_000_000)),
    "sse_retry_ms": ("SSE_RETRY_MS", _number(int, 0, 600_000)),
    "sse_gap_timeout": ("SSE_GAP_TIMEOUT", _number(float, 0.0, 600.0, low_open=True)),
    "sse_send_timeout": ("SSE_SEND_TIMEOUT", _number(float, 0.0, 600.0, low_open=True)),
    "event_retention_days": ("EVENT_RETENTION_DAYS", _number(int, 1, 36_500)),
    "message_retention_days": ("MESSAGE_RETENTION_DAYS", _number(int, 1, 36_500)),
    "event_max_bytes": ("EVENT_MAX_BYTES", _number(int, 256, 16 * 1024 * 1024)),
    "worker_concurrency": ("WORKER_CONCURRENCY", _number(int, 1, 10_000)),
    "job_time_limit": ("JOB_TIME_LIMIT", _number(float, 0.0, 604_800.0, low_open=True)),
    "job_max_tries": ("JOB_MAX_TRIES", _number(int, 1, 100)),
    "worker_metrics_port": ("WORKER_METRICS_PORT", _number(int, 0, 65_535)),
    "emit_flush_interval": ("EMIT_FLUSH_INTERVAL", _number(float, 0.0, 10.0)),
    "emit_flush_events": ("EMIT_FLUSH_EVENTS", _number(int, 1, 10_000)),
    "shutdown_grace": ("SHUTDOWN_GRACE", _number(float, 0.0, 3_600.0)),
    "openai_base_url": ("OPENAI_BASE_URL", _http_url),
    "openai_api_key": ("OPENAI_API_KEY", _secret),
    "openai_model": ("OPENAI_MODEL", _text),
    "agents": ("AGENTS", _agents),
    "host": ("HOST", _text),
    "port": ("PORT", _number(int, 0, 65_535)),
    "api_workers": ("API_WORKERS", parse_workers),
    "log_level": ("LOG_LEVEL", _log_level),
    "log_format": ("LOG_FORMAT", _choice(LogFormat)),
    "migrate_on_startup": ("MIGRATE_ON_STARTUP", _bool),
}

ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(variable for variable, _ in _PARSERS.values())
