"""What operators rely on: metrics that move, readiness that names the failing check, JSON logs."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Secret, Settings
from embedded.redis import free_port, start_redis, stop
from support.servers import RunningAPI, running_api
from support.sse import open_stream
from support.waits import eventually

FAMILIES = {
    "agentstream_events_created": "counter",
    "agentstream_event_insert_seconds": "histogram",
    "agentstream_event_query_seconds": "histogram",
    "agentstream_sse_connections": "gauge",
    "agentstream_sse_deliveries": "counter",
    "agentstream_session_subscribers": "histogram",
    "agentstream_feed_mode": "gauge",
    "agentstream_feed_lag_seconds": "histogram",
    "agentstream_poll_queries": "counter",
    "agentstream_change_stream_resumes": "counter",
    "agentstream_slow_client_disconnects": "counter",
    "agentstream_history_lost": "counter",
    "agentstream_gap_fills": "counter",
    "agentstream_collection_size_bytes": "gauge",
    "agentstream_collection_documents": "gauge",
    "agentstream_queue_length": "gauge",
    "agentstream_sse_connection_limit": "gauge",
    "agentstream_sse_subjects": "gauge",
    "agentstream_rate_limit_subjects": "gauge",
    "agentstream_limit_rejections": "counter",
    "agentstream_unavailable": "counter",
    "agentstream_header_timeouts": "counter",
}


async def scrape(
    client: httpx.AsyncClient,
) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(response.text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        found[f"{family.name}:{family.type}"] = samples
    return found


def value(metrics: dict, family: str, kind: str, sample: str, **labels: str) -> float:
    return metrics[f"{family}:{kind}"].get((sample, tuple(sorted(labels.items()))), 0.0)


async def test_every_family_is_exposed_and_traffic_moves_them(feed_api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        before = await scrape(client)
        for family, kind in FAMILIES.items():
            assert f"{family}:{kind}" in before, family
        mode = feed_api.services.feed.mode
        assert (
            value(before, "agentstream_feed_mode", "gauge", "agentstream_feed_mode", mode=mode) == 1
        )

        async with (
            open_stream(client, "metered") as stream,
            open_stream(client, "metered") as other,
        ):
            await eventually(lambda: feed_api.services.hub.subscribers == 2)
            during = await scrape(client)
            body = {"events": [{"type": "tick", "data": {}}, {"type": "tick", "data": {}}]}
            await client.post("/v1/sessions/metered/events", json=body)
            await stream.take(2)
            await other.take(2)
        await feed_api.services.monitor.refresh()
        after = await scrape(client)

    created = "agentstream_events_created", "counter", "agentstream_events_created_total"
    # "tick" is no type of the service's own: it counts as "other" (bounded label values)
    assert value(after, *created, type="other") - value(before, *created, type="other") == 2
    assert value(during, "agentstream_sse_connections", "gauge", "agentstream_sse_connections") == 2
    subscribers = "agentstream_session_subscribers", "histogram"
    assert value(during, *subscribers, "agentstream_session_subscribers_count") == 1
    assert value(during, *subscribers, "agentstream_session_subscribers_sum") == 2
    deliveries = "agentstream_sse_deliveries", "counter", "agentstream_sse_deliveries_total"
    assert value(after, *deliveries) - value(before, *deliveries) == 4
    inserts = (
        "agentstream_event_insert_seconds",
        "histogram",
        "agentstream_event_insert_seconds_count",
    )
    assert value(after, *inserts) > value(before, *inserts)
    lag = "agentstream_feed_lag_seconds", "histogram", "agentstream_feed_lag_seconds_count"
    assert value(after, *lag) >= 2
    queries = (
        "agentstream_event_query_seconds",
        "histogram",
        "agentstream_event_query_seconds_count",
    )
    assert value(after, *queries, query="after") > value(before, *queries, query="after")
    size = "agentstream_collection_size_bytes", "gauge", "agentstream_collection_size_bytes"
    assert value(after, *size, collection="events") > 0
    count = "agentstream_collection_documents", "gauge", "agentstream_collection_documents"
    assert value(after, *count, collection="events") == 2


async def test_readyz_names_redis_when_it_stops_and_recovers(settings: Settings) -> None:
    port = free_port()
    process, url = start_redis(port)
    try:
        own = dataclasses.replace(settings, redis_url=Secret(url))
        async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
            assert (await client.get("/readyz")).status_code == 200
            stop(process)
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["redis"]["ok"] is False
            assert body["checks"]["redis"]["error"]
            assert body["checks"]["mongo"]["ok"] is True
            process, _ = start_redis(port)
            again = await client.get("/readyz")
            assert again.status_code == 200, again.text
            await api.services.mongo.drop_database(own.mongo_db)
    finally:
        stop(process)


@pytest.mark.timeout(60)
def test_json_logs_carry_the_session_id(settings: Settings) -> None:
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    port = free_port()
    env = dict(
        os.environ,
        MONGO_URL=settings.mongo_url.get(),
        REDIS_URL=settings.redis_url.get(),
        MONGO_DB=settings.mongo_db,
        PORT=str(port),
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        AUTH_MODE="off",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert server.stderr is not None
    lines: list[str] = []
    try:
        for line in server.stderr:  # bounded by the test's timeout
            lines.append(line)
            if "Application startup complete" in line:
                break
        with httpx.stream("GET", f"http://127.0.0.1:{port}/v1/sessions/logged/stream") as stream:
            next(stream.iter_lines())
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=30)
        lines += rest.splitlines()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    records = [orjson.loads(line) for line in lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("session_id") == "logged" for r in records), records[-5:]
    assert not any("Traceback" in r["message"] for r in records)
