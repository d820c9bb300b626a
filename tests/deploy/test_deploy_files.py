"""Structural checks of the deployment files.

compose.yaml, deploy/Dockerfile, .dockerignore, deploy/nginx.conf and deploy/prometheus/*
are read and parsed here (PyYAML, a small nginx tokenizer, a Dockerfile line reader);
nothing is built or started. Where a Docker engine answers, `docker compose config`
validates compose.yaml as well.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

SERVICES = {"mongo", "redis", "migrate", "api", "worker", "nginx", "prometheus"}
APP_SERVICES = ("migrate", "api", "worker")
ONE_SHOT = {"migrate"}
LONG_RUNNING = sorted(SERVICES - ONE_SHOT)
SCALABLE = ("api", "worker")

# The metrics the application exports (app/metrics), by type.
METRICS = {
    "agentstream_events_created_total": "counter",
    "agentstream_event_insert_seconds": "histogram",
    "agentstream_event_query_seconds": "histogram",
    "agentstream_sse_connections": "gauge",
    "agentstream_collection_size_bytes": "gauge",
    "agentstream_runs_total": "counter",
    "agentstream_run_duration_seconds": "histogram",
    "agentstream_queue_length": "gauge",
    "agentstream_feed_lag_seconds": "histogram",
    "agentstream_slow_client_disconnects_total": "counter",
    "agentstream_history_lost_total": "counter",
    "agentstream_change_stream_resumes_total": "counter",
}
# Prometheus' own per-target series, the only other name an alert may use.
PROMETHEUS_SERIES = {"up"}


def _series_names() -> set[str]:
    names = set(PROMETHEUS_SERIES)
    for name, kind in METRICS.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


SERIES_NAMES = _series_names()


# --------------------------------------------------------------------------- compose.yaml


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    svc = compose()["services"][name]
    assert isinstance(svc, dict)
    return svc


def command_of(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return [str(part) for part in cmd or []]


def healthcheck_text(svc: dict[str, Any]) -> str:
    test = (svc.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(part) for part in test)
    return str(test or "")


def depends_condition(svc: dict[str, Any], dependency: str) -> str | None:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if dependency in deps else None
    if dependency not in deps:
        return None
    return str((deps[dependency] or {}).get("condition", "service_started"))


def environment_of(svc: dict[str, Any]) -> dict[str, Any]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_compose_declares_the_expected_services() -> None:
    assert set(compose()["services"]) == SERVICES


def test_app_services_share_the_x_app_anchor() -> None:
    raw = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert re.search(r"^x-app:\s*&\w", raw, re.MULTILINE), "x-app must define a YAML anchor"
    assert "x-app" in compose()
    images = set()
    for name in APP_SERVICES:
        svc = service(name)
        build = svc["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()
        images.add(svc["image"])
        env = environment_of(svc)
        assert env["MONGO_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["MONGO_DB"] == "agentstream"
    assert len(images) == 1, f"migrate, api and worker must run one image, got {images}"


def test_mongo_runs_the_rs0_replica_set() -> None:
    mongo = service("mongo")
    assert str(mongo["image"]).startswith("mongo:8.0")
    cmd = command_of(mongo)
    assert cmd[0] == "mongod"
    assert "--bind_ip_all" in cmd
    assert "--replSet" in cmd
    assert cmd[cmd.index("--replSet") + 1] == "rs0"
    assert any(str(v).endswith(":/data/db") for v in mongo.get("volumes", []))


def test_mongo_healthcheck_initiates_the_replica_set_idempotently() -> None:
    mongo = service("mongo")
    text = healthcheck_text(mongo)
    assert "mongosh" in text
    assert "rs.status()" in text
    assert "rs.initiate(" in text
    # Initiate only when rs.status() fails, i.e. when no configuration exists yet.
    assert re.search(
        r"try\s*\{[^}]*rs\.status\(\)[^}]*\}\s*catch\s*\(\w+\)\s*\{\s*rs\.initiate", text
    )
    assert "_id: 'rs0'" in text or '_id: "rs0"' in text
    assert "mongo:27017" in text
    hc = mongo["healthcheck"]
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in hc, f"mongo healthcheck has no {key}"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_healthcheck(name: str) -> None:
    hc = service(name).get("healthcheck") or {}
    assert not hc.get("disable"), f"{name} disables its healthcheck"
    assert hc.get("test"), f"{name} has no healthcheck"
    assert hc.get("interval")
    assert hc.get("retries")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("api", "/readyz"),
        ("worker", "worker --check"),
        ("redis", "redis-cli ping"),
        ("nginx", "127.0.0.1:8080"),
    ],
)
def test_healthchecks_probe_the_right_thing(name: str, fragment: str) -> None:
    assert fragment in healthcheck_text(service(name))


@pytest.mark.parametrize("name", SCALABLE)
def test_api_and_worker_can_scale(name: str) -> None:
    svc = service(name)
    assert "container_name" not in svc, f"{name} with a container_name cannot be scaled"
    assert "ports" not in svc, f"{name} publishing a host port cannot be scaled"


def test_migrate_is_a_one_shot_that_gates_api_and_worker() -> None:
    migrate = service("migrate")
    assert command_of(migrate) == ["app", "migrate"]
    assert str(migrate.get("restart")) == "no"
    assert depends_condition(migrate, "mongo") == "service_healthy"
    for name in SCALABLE:
        svc = service(name)
        assert depends_condition(svc, "migrate") == "service_completed_successfully", name
        assert depends_condition(svc, "redis") == "service_healthy", name


def test_api_serves_without_migrating_on_startup() -> None:
    api = service("api")
    assert command_of(api) == ["app", "serve"]
    assert environment_of(api)["MIGRATE_ON_STARTUP"] == "false"


def test_worker_runs_the_arq_worker_and_stops_gracefully() -> None:
    worker = service("worker")
    assert command_of(worker) == ["worker"]
    assert worker["stop_grace_period"] == "60s"


def _image_version(image: str) -> tuple[int, ...]:
    tag = image.partition(":")[2]
    match = re.match(r"(\d+(?:\.\d+)*)", tag)
    assert match, f"{image} has no numeric version tag"
    return tuple(int(part) for part in match.group(1).split("."))


def test_nginx_publishes_the_single_entry_point() -> None:
    nginx = service("nginx")
    assert str(nginx["image"]).startswith("nginx:")
    assert any(
        str(v).startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf") for v in nginx["volumes"]
    )
    assert [str(p) for p in nginx["ports"]] == ["${PORT:-8000}:8080"]
    assert depends_condition(nginx, "api") is not None


def test_nginx_image_supports_dynamic_upstream_resolution() -> None:
    # `server ... resolve` in an upstream is open-source nginx from 1.27.3 on.
    uses_resolve = any(d.name == "server" and "resolve" in d.args for d in walk(nginx_conf()))
    if uses_resolve:
        version = _image_version(str(service("nginx")["image"]))
        assert version >= (1, 27, 3), version


def test_prometheus_is_an_opt_in_profile() -> None:
    prometheus = service("prometheus")
    assert prometheus["profiles"] == ["monitoring"]
    assert any(
        str(v).startswith("./deploy/prometheus:/etc/prometheus") for v in prometheus["volumes"]
    )
    assert "--config.file=/etc/prometheus/prometheus.yml" in command_of(prometheus)


def _no_docker_engine_reason() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH"
    try:
        info = subprocess.run(
            [docker, "info"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if info.returncode != 0:
        detail = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info` ({detail})"
    return None


def test_docker_compose_config_accepts_compose_yaml() -> None:
    reason = _no_docker_engine_reason()
    if reason is not None:
        pytest.skip(f"{reason}; compose.yaml is still checked structurally by the other tests")
    result = subprocess.run(
        ["docker", "compose", "--profile", "monitoring", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- nginx.conf


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = field(default=None)


_NGINX_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<punct>[{};])
    | "(?P<dq>(?:[^"\\]|\\.)*)"
    | '(?P<sq>(?:[^'\\]|\\.)*)'
    | (?P<word>[^\s{};"'\#][^\s{};"']*)
    """,
    re.VERBOSE,
)


def tokenize_nginx(text: str) -> Iterator[tuple[str, str]]:
    """Yield ("punct", "{" | "}" | ";") and ("word", value); quotes are removed."""
    pos = 0
    while pos < len(text):
        match = _NGINX_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(
                f"cannot tokenize nginx config at offset {pos}: {text[pos : pos + 20]!r}"
            )
        pos = match.end()
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        if kind == "punct":
            yield "punct", match.group()
        else:
            yield "word", match.group(kind or "word")


def parse_nginx(text: str) -> list[Directive]:
    """Blocks and directives, brace-aware. Raises ValueError on malformed input."""
    root: list[Directive] = []
    stack = [root]
    words: list[str] = []
    for kind, value in tokenize_nginx(text):
        if kind == "word":
            words.append(value)
        elif value == "{":
            if not words:
                raise ValueError("block without a name")
            block: list[Directive] = []
            stack[-1].append(Directive(words[0], words[1:], block))
            stack.append(block)
            words = []
        elif value == ";":
            if not words:
                raise ValueError("empty directive")
            stack[-1].append(Directive(words[0], words[1:]))
            words = []
        else:
            if words or len(stack) == 1:
                raise ValueError("unbalanced '}'")
            stack.pop()
    if words or len(stack) != 1:
        raise ValueError("unterminated directive or block")
    return root


def walk(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        if directive.block is not None:
            yield from walk(directive.block)


def children(directives: list[Directive], name: str) -> list[Directive]:
    return [d for d in directives if d.name == name]


def only(directives: list[Directive], name: str) -> Directive:
    found = children(directives, name)
    assert len(found) == 1, f"expected one {name!r}, found {len(found)}"
    return found[0]


def effective(levels: list[list[Directive]], name: str) -> list[Directive]:
    """nginx inheritance: the innermost level that sets `name` at all wins, whole."""
    for level in reversed(levels):
        found = children(level, name)
        if found:
            return found
    return []


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 1}
    parts = re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w)?)+", value)
    assert parts, f"not an nginx time: {value!r}"
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|)", value))


@functools.cache
def nginx_conf() -> list[Directive]:
    return parse_nginx((DEPLOY / "nginx.conf").read_text(encoding="utf-8"))


def nginx_http() -> list[Directive]:
    block = only(nginx_conf(), "http").block
    assert block is not None
    return block


def nginx_server() -> list[Directive]:
    servers = children(nginx_http(), "server")
    assert len(servers) == 1
    assert servers[0].block is not None
    return servers[0].block


def location(match: list[str]) -> list[Directive]:
    for directive in children(nginx_server(), "location"):
        if directive.args == match:
            assert directive.block is not None
            return directive.block
    raise AssertionError(f"no location {' '.join(match)}")


STREAM_LOCATION = ["~", "^/v1/sessions/[^/]+/stream$"]


def stream_levels() -> list[list[Directive]]:
    return [nginx_http(), nginx_server(), location(STREAM_LOCATION)]


def header_values(levels: list[list[Directive]]) -> dict[str, str]:
    headers = {}
    for directive in effective(levels, "proxy_set_header"):
        assert len(directive.args) == 2, directive
        headers[directive.args[0].lower()] = directive.args[1]
    return headers


def test_nginx_tokenizer_reads_blocks_quotes_and_comments() -> None:
    parsed = parse_nginx(
        'http { # a comment { ;\n map $a $b { "" x; default "y z"; }\n'
        " proxy_set_header Connection \"\"; return 200 'a;b{c}'; }"
    )
    http = only(parsed, "http")
    assert http.block is not None
    map_block = only(http.block, "map").block
    assert map_block is not None
    assert [(d.name, d.args) for d in map_block] == [("", ["x"]), ("default", ["y z"])]
    assert only(http.block, "proxy_set_header").args == ["Connection", ""]
    assert only(http.block, "return").args == ["200", "a;b{c}"]


@pytest.mark.parametrize("text", ["http {", "http { }}", "a b", "{ x; }", "http { ; }"])
def test_nginx_tokenizer_rejects_malformed_input(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_nginx(text)


def test_nginx_conf_is_complete() -> None:
    names = [d.name for d in nginx_conf()]
    assert "events" in names
    assert "http" in names
    assert only(nginx_conf(), "events").block is not None


def test_nginx_listens_on_8080() -> None:
    assert [d.args for d in children(nginx_server(), "listen")] == [["8080"]]


def test_upstream_resolves_every_api_replica_through_docker_dns() -> None:
    upstreams = [d for d in children(nginx_http(), "upstream") if d.args == ["api"]]
    assert len(upstreams) == 1
    block = upstreams[0].block
    assert block is not None
    server = only(block, "server")
    assert server.args[0] == "api:8000"
    assert "resolve" in server.args, "without `resolve` nginx never sees new api replicas"
    assert children(block, "zone"), "`resolve` needs the upstream in a shared memory zone"
    resolvers = children(nginx_http(), "resolver") + children(block, "resolver")
    assert any("127.0.0.11" in r.args and "valid=10s" in r.args for r in resolvers)
    keepalive = only(block, "keepalive")
    assert int(keepalive.args[0]) >= 16
    names = [d.name for d in block]
    for method in ("least_conn", "hash", "ip_hash", "random"):
        if method in names:
            assert names.index(method) < names.index("keepalive"), "method before keepalive"


def test_stream_location_matches_session_stream_paths_only() -> None:
    location(STREAM_LOCATION)
    pattern = re.compile(STREAM_LOCATION[1])
    assert pattern.search("/v1/sessions/abc.DEF_1:2-3/stream")
    assert not pattern.search("/v1/sessions/a/b/stream")
    assert not pattern.search("/v1/sessions/a/stream/more")
    assert not pattern.search("/v1/sessions/a/events")


def test_stream_location_streams_unbuffered() -> None:
    block = location(STREAM_LOCATION)
    assert only(block, "proxy_pass").args == ["http://api"]
    assert only(block, "proxy_buffering").args == ["off"]
    assert only(block, "proxy_cache").args == ["off"]
    assert only(block, "chunked_transfer_encoding").args == ["on"]
    accel = [d.args for d in effective(stream_levels(), "add_header")]
    assert ["X-Accel-Buffering", "no", "always"] in accel or ["X-Accel-Buffering", "no"] in accel
    # X-Accel-Buffering from the api must keep working: it is not ignored.
    ignored = " ".join(" ".join(d.args) for d in effective(stream_levels(), "proxy_ignore_headers"))
    assert "X-Accel-Buffering" not in ignored


@pytest.mark.parametrize("name", ["proxy_read_timeout", "proxy_send_timeout"])
def test_stream_location_allows_long_lived_streams(name: str) -> None:
    found = effective(stream_levels(), name)
    assert len(found) == 1, f"{name} is not set for the stream location"
    assert nginx_seconds(found[0].args[0]) >= 300


@pytest.mark.parametrize("match", [STREAM_LOCATION, ["/"]])
def test_upstream_connections_use_http11_keepalive(match: list[str]) -> None:
    levels = [nginx_http(), nginx_server(), location(match)]
    assert [d.args for d in effective(levels, "proxy_http_version")] == [["1.1"]]
    assert header_values(levels).get("connection") == "", "Connection header must be cleared"
    assert [d.args for d in effective(levels, "proxy_pass")] == [["http://api"]]


@pytest.mark.parametrize("match", [STREAM_LOCATION, ["/"]])
def test_client_headers_and_last_event_id_reach_the_api(match: list[str]) -> None:
    levels = [nginx_http(), nginx_server(), location(match)]
    headers = header_values(levels)
    assert headers.get("x-forwarded-for") == "$proxy_add_x_forwarded_for"
    assert headers.get("x-forwarded-proto", "").startswith("$")
    assert "last-event-id" not in headers, "Last-Event-ID must pass through unchanged"
    passing = effective(levels, "proxy_pass_request_headers")
    assert not passing or passing[0].args == ["on"]


def test_metrics_are_not_published_through_nginx() -> None:
    block = location(["=", "/metrics"])
    denied = any(d.name == "deny" and d.args == ["all"] for d in block)
    not_found = any(d.name == "return" and d.args[:1] == ["404"] for d in block)
    assert denied or not_found
    assert not children(block, "proxy_pass")


# --------------------------------------------------------------------------- Prometheus


@functools.cache
def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    assert rules
    return rules


_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_PROMQL_KEYWORDS = _PROMQL_WORDS | {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Series names an expression selects: identifiers that are not functions,
    keywords, label names or parts of numbers and durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    words = "|".join(sorted(_PROMQL_WORDS))
    text = re.sub(rf"\b(?:{words})\s*\([^)]*\)", " ", text)
    text = re.sub(rf"(?<![\w:]){_NUMBER}", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue
        if match.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def thresholds(expr: str) -> list[float]:
    return [float(n) for n in re.findall(rf"(?<![<>!=])>=?\s*({_NUMBER})", expr)]


def rules_using(metric: str) -> list[dict[str, Any]]:
    return [r for r in alert_rules() if metric in promql_metric_names(r["expr"])]


def compact(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_promql_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, query) (rate(x_bucket{a="b c"}[5m]))) > 10e9 '
        'and on () sum(increase(y_total[15m])) >= 20 or up{job="j"} == 0'
    )
    assert promql_metric_names(expr) == {"x_bucket", "y_total", "up"}
    assert thresholds(expr) == [10e9, 20]


def test_every_rule_is_complete() -> None:
    names = []
    for rule in alert_rules():
        names.append(rule["alert"])
        assert str(rule.get("expr", "")).strip(), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, rule
        assert str(rule.get("annotations", {}).get("summary", "")).strip(), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule["for"])), rule["alert"]
    assert len(names) == len(set(names)), "alert names must be unique"


def test_alert_expressions_use_only_exported_metric_names() -> None:
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']} selects no series"
        unknown = names - SERIES_NAMES
        assert not unknown, f"{rule['alert']} uses unknown metric names {sorted(unknown)}"


@pytest.mark.parametrize(
    ("metric", "accepted", "fragments", "for_"),
    [
        (
            "agentstream_events_created_total",
            [1000],
            ["sum(rate(agentstream_events_created_total[5m]))"],
            None,
        ),
        (
            "agentstream_event_query_seconds_bucket",
            [0.01],
            ["histogram_quantile(0.95,"],
            None,
        ),
        ("agentstream_sse_connections", [10000], ["sum(agentstream_sse_connections)"], None),
        ("agentstream_collection_size_bytes", [10e9, 10737418240], [], None),
        ("agentstream_runs_total", [0.1], ["[15m]", 'status=~"failed'], None),
        ("agentstream_queue_length", [100], [], "10m"),
        ("agentstream_feed_lag_seconds_bucket", [1], ["histogram_quantile(0.99,"], None),
        ("agentstream_slow_client_disconnects_total", [], [], None),
    ],
)
def test_seed_thresholds_are_alerted(
    metric: str, accepted: list[float], fragments: list[str], for_: str | None
) -> None:
    candidates = rules_using(metric)
    assert candidates, f"no alert uses {metric}"

    def fits(rule: dict[str, Any]) -> bool:
        expr = compact(rule["expr"])
        if any(fragment not in expr for fragment in fragments):
            return False
        if for_ is not None and str(rule.get("for")) != for_:
            return False
        found = thresholds(rule["expr"])
        return not accepted or any(math.isclose(t, a) for t in found for a in accepted)

    assert any(fits(rule) for rule in candidates), [r["alert"] for r in candidates]


@functools.cache
def prometheus_config() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_prometheus_loads_the_alert_rules() -> None:
    rule_files = prometheus_config()["rule_files"]
    assert "alerts.yml" in [Path(name).name for name in rule_files]
    for name in rule_files:
        # Relative names resolve against the directory of prometheus.yml.
        assert (DEPLOY / "prometheus" / name).is_file(), name


def test_prometheus_scrapes_every_api_replica() -> None:
    jobs = prometheus_config()["scrape_configs"]
    api_jobs = [
        job
        for job in jobs
        for sd in job.get("dns_sd_configs", [])
        if "api" in sd.get("names", []) and sd.get("port") == 8000
    ]
    assert len(api_jobs) == 1
    job = api_jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert all(sd.get("type", "A") == "A" for sd in job["dns_sd_configs"])
    # The availability alert selects this job by name.
    job_selectors = {
        m for r in alert_rules() for m in re.findall(r'up\{job="([^"]+)"\}', r["expr"])
    }
    assert job_selectors <= {job["job_name"]}
    for other in jobs:
        for static in other.get("static_configs", []):
            assert not any(t.startswith("nginx") for t in static.get("targets", []))


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.instructions if name == instruction]


@functools.cache
def dockerfile_text() -> str:
    return (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def dockerfile_stages() -> list[Stage]:
    lines = [ln for ln in dockerfile_text().splitlines() if not ln.lstrip().startswith("#")]
    logical = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[Stage] = []
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].instructions.append((instruction, rest))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env = {}
    for rest in stage.args_of("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_dockerfile_is_multi_stage_on_python_313_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert {stage.image for stage in stages} == {"python:3.13-slim"}


def test_build_stage_installs_the_project_pinned_uv_with_pip() -> None:
    wanted = re.search(r'^UV_VERSION="([^"]+)"', (ROOT / "dev").read_text(), re.MULTILINE)
    assert wanted, "./dev pins no UV_VERSION"
    build = dockerfile_stages()[0]
    args = " ".join(build.args_of("ARG"))
    runs = " ".join(build.args_of("RUN"))
    pinned = f"uv=={wanted.group(1)}" in runs or (
        f"UV_VERSION={wanted.group(1)}" in args and "uv==${UV_VERSION}" in runs
    )
    assert "pip install" in runs
    assert pinned, f"the image must install uv {wanted.group(1)}, as ./dev does"


def test_uv_sync_is_frozen_and_installs_runtime_dependencies_only() -> None:
    build = dockerfile_stages()[0]
    syncs = [run for run in build.args_of("RUN") if "uv sync" in run]
    assert syncs
    for run in syncs:
        assert "--frozen" in run
        assert "--no-dev" in run
        assert "--all-extras" not in run
        assert "--extra" not in run
    assert "--no-editable" in syncs[-1]
    assert "--no-install-project" not in syncs[-1]
    assert env_of(build).get("UV_PROJECT_ENVIRONMENT") == "/opt/venv"
    instructions = " ".join(rest for stage in dockerfile_stages() for _, rest in stage.instructions)
    assert "embedded" not in instructions, "the embedded extra is for development only"


def test_runtime_stage_takes_only_the_venv_from_the_build() -> None:
    build, runtime = dockerfile_stages()[0], dockerfile_stages()[-1]
    copies = runtime.args_of("COPY")
    assert copies
    for copy in copies:
        assert copy.startswith(f"--from={build.name} "), f"runtime copies from the context: {copy}"
    assert f"--from={build.name} /opt/venv /opt/venv" in copies


def test_runtime_runs_as_uid_10001() -> None:
    runtime = dockerfile_stages()[-1]
    users = runtime.args_of("USER")
    assert users
    user = users[-1].partition(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001" or "--uid 10001" in " ".join(runtime.args_of("RUN"))


def test_runtime_environment_and_port() -> None:
    runtime = dockerfile_stages()[-1]
    env = env_of(runtime)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    assert runtime.args_of("EXPOSE") == ["8000"]


def test_healthcheck_uses_python_urllib_on_healthz() -> None:
    checks = dockerfile_stages()[-1].args_of("HEALTHCHECK")
    assert len(checks) == 1
    assert "urllib" in checks[0]
    assert "/healthz" in checks[0]
    assert "curl" not in checks[0]
    assert "wget" not in checks[0]


def test_default_command_serves_the_api() -> None:
    cmds = dockerfile_stages()[-1].args_of("CMD")
    assert cmds
    assert json.loads(cmds[-1]) == ["app", "serve"]


# --------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[str]:
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _pattern_matches(path: str, pattern: str) -> bool:
    parts = path.split("/")
    if pattern.startswith("**/"):
        return any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)


def dockerignored(path: str) -> bool:
    """Approximates Docker's rules: last matching pattern wins, `!` re-includes."""
    excluded = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        if _pattern_matches(path, pattern.lstrip("!").strip("/")):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv-tools/bin/uv",
        ".git/HEAD",
        "tests/deploy/test_deploy_files.py",
        "bench/results/latest.json",
        "app/__pycache__/cli.cpython-313.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.13/app.json",
        ".ruff_cache/content",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_context(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "uv.lock", "README.md", "app/__init__.py", "worker/__init__.py"]
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not dockerignored(path)


# --------------------------------------------------------------------------- operator notes


def test_operator_notes_cover_scaling_and_monitoring() -> None:
    notes = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for fragment in (
        "docker compose up",
        "--scale api=3",
        "--scale worker=2",
        "--profile monitoring",
    ):
        assert fragment in notes


# --------------------------------------------------------------------------- access control


def test_compose_requires_a_signing_secret_for_the_api() -> None:
    env = environment_of(service("api"))
    assert env["AUTH_MODE"] == "jwt"
    assert str(env["AUTH_JWT_SECRET"]).startswith("${AUTH_JWT_SECRET:?"), env["AUTH_JWT_SECRET"]
    for name in ("migrate", "worker"):  # they verify no token and need no key
        assert "AUTH_JWT_SECRET" not in environment_of(service(name))


def test_nginx_logs_never_hold_a_query_string() -> None:
    formats = [d for d in walk(nginx_conf()) if d.name == "log_format"]
    assert formats
    for directive in formats:
        text = " ".join(directive.args)
        for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string"):
            assert variable not in text, (directive.args[0], variable)
        assert "$arg_" not in text
