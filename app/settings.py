"""One frozen settings object, built from the environment in the entry points only."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot accept."""

    def __init__(self, variable: str, value: str, accepts: str, *, message: str = "") -> None:
        shown = value if len(value) <= 40 else value[:37] + "..."
        super().__init__(
            message or f"{variable}={shown!r} is invalid: {variable} accepts {accepts}"
        )
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


class AuthMode(enum.StrEnum):
    JWT = "jwt"
    OFF = "off"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DB_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
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
    worker_claim_ttl: float = 10.0
    worker_heartbeat: float = 3.0
    reconcile_interval: float = 5.0
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
    auth_mode: AuthMode = AuthMode.JWT
    auth_jwt_secret: Secret | None = None
    auth_jwt_public_key: str | None = None
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    sse_max_connections: int = 10_000
    sse_max_connections_per_subject: int = 100
    write_rate_limit: float = 0.0
    request_timeout: float = 10.0
    header_timeout: float = 10.0
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)

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

    def check_auth(self) -> None:
        """The API's own check: AUTH_MODE=jwt needs exactly one key (SettingsError otherwise).

        Workers and `app migrate` never verify a token, so only the API entry points call it.
        """
        if self.auth_mode is AuthMode.OFF:
            return
        if self.auth_jwt_secret is None and self.auth_jwt_public_key is None:
            raise SettingsError(
                "AUTH_JWT_SECRET",
                "",
                "",
                message="AUTH_MODE=jwt needs AUTH_JWT_SECRET (HS256, at least 32 bytes) or"
                " AUTH_JWT_PUBLIC_KEY (PEM; RS256 or ES256); or set AUTH_MODE=off to serve"
                " everyone without tokens",
            )
        if self.auth_jwt_secret is not None and self.auth_jwt_public_key is not None:
            raise SettingsError(
                "AUTH_JWT_PUBLIC_KEY",
                "",
                "",
                message="set either AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both: the"
                " accepted algorithm follows from the one key",
            )

    def describe(self) -> dict[str, object]:
        """Every setting, secrets redacted: for start-up logs and `app stats`."""
        shown: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("mongo_url", "redis_url"):
                value = redact_url(value.get()) if value is not None else "embedded"
            elif isinstance(value, Secret):
                value = "**********"
            elif field.name == "auth_jwt_public_key" and value is not None:
                value = "PEM public key"
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


def _jwt_secret(variable: str, raw: str) -> Secret:
    if len(raw.encode()) < 32:
        raise SettingsError(variable, "**********", "a secret of at least 32 bytes (HS256)")
    return Secret(raw)


def _public_key(variable: str, raw: str) -> str:
    from app.auth.keys import KeyProblem, algorithm_of

    pem = raw.replace("\\n", "\n")
    try:
        algorithm_of(pem)
    except KeyProblem as exc:
        raise SettingsError(variable, "PEM", f"a PEM public key: {exc}") from None
    return pem


def _origins(variable: str, raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin) if _ORIGIN.match(origin) else None
        if parts is None or parts.path or parts.query:
            raise SettingsError(
                variable,
                raw,
                "comma-separated origins like https://app.example.com (never *)",
            )
    return origins


def _addresses(variable: str, raw: str) -> tuple[str, ...]:
    accepts = "a comma-separated list of IP addresses or networks, or *"
    parts = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not parts:
        raise SettingsError(variable, raw, accepts)
    for part in parts:
        if part == "*":
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise SettingsError(variable, raw, accepts) from None
    return parts


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
    "worker_claim_ttl": ("WORKER_CLAIM_TTL", _number(float, 0.5, 3_600.0)),
    "worker_heartbeat": ("WORKER_HEARTBEAT", _number(float, 0.0, 600.0, low_open=True)),
    "reconcile_interval": ("RECONCILE_INTERVAL", _number(float, 0.0, 3_600.0)),
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
    "auth_mode": ("AUTH_MODE", _choice(AuthMode)),
    "auth_jwt_secret": ("AUTH_JWT_SECRET", _jwt_secret),
    "auth_jwt_public_key": ("AUTH_JWT_PUBLIC_KEY", _public_key),
    "auth_jwt_issuer": ("AUTH_JWT_ISSUER", _text),
    "auth_jwt_audience": ("AUTH_JWT_AUDIENCE", _text),
    "cors_origins": ("CORS_ORIGINS", _origins),
    "max_body_bytes": ("MAX_BODY_BYTES", _number(int, 1024, 1024 * 1024 * 1024)),
    "sse_max_connections": ("SSE_MAX_CONNECTIONS", _number(int, 1, 10_000_000)),
    "sse_max_connections_per_subject": (
        "SSE_MAX_CONNECTIONS_PER_SUBJECT",
        _number(int, 1, 10_000_000),
    ),
    "write_rate_limit": ("WRITE_RATE_LIMIT", _number(float, 0.0, 1_000_000.0)),
    "request_timeout": ("REQUEST_TIMEOUT", _number(float, 1.0, 600.0)),
    "header_timeout": ("HEADER_TIMEOUT", _number(float, 0.0, 3_600.0, low_open=True)),
    "forwarded_allow_ips": ("FORWARDED_ALLOW_IPS", _addresses),
}

ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(variable for variable, _ in _PARSERS.values())
