"""A real `app serve` process: tokens never reach its output; AUTH_MODE=off says so loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from app.settings import Settings
from embedded.redis import free_port
from support.tokens import SECRET, bearer, token

pytestmark = pytest.mark.timeout(120)


def serve(settings: Settings, **extra: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """`python -m app serve` on a free port; returns it, its URL and its output up to start-up."""
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    port = free_port()
    env = dict(
        os.environ,
        MONGO_URL=settings.mongo_url.get(),
        REDIS_URL=settings.redis_url.get(),
        MONGO_DB=settings.mongo_db,
        PORT=str(port),
        LOG_LEVEL="DEBUG",
        **extra,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    lines: list[str] = []
    for line in server.stdout:  # bounded by the test's timeout
        lines.append(line)
        if "Application startup complete" in line:
            break
    return server, f"http://127.0.0.1:{port}", lines


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    rest, _ = server.communicate(timeout=30)
    return rest or ""


@pytest.fixture
def jwt_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    found = serve(settings, AUTH_JWT_SECRET=SECRET)
    try:
        yield found
    finally:
        if found[0].poll() is None:
            found[0].kill()
            found[0].communicate()


def test_token_values_never_reach_the_output(
    jwt_process: tuple[subprocess.Popen[str], str, list[str]],
) -> None:
    server, url, lines = jwt_process
    by_cookie = token("cookie-user", sessions=["s1"])
    by_query = token("query-user", sessions=["s1"])
    expired = token("late-user", sessions=["s1"], ttl=-60)
    forged = token("forger", key="some-other-secret-that-is-32-bytes-long")
    with httpx.Client(base_url=url, timeout=15) as client:
        written = client.post(
            "/v1/sessions/s1/events",
            json={"type": "n", "data": {}},
            headers=bearer(token(sessions=["s1"])),
        )
        assert written.status_code == 201, written.text
        client.cookies.set("agentstream_token", by_cookie)
        with client.stream("GET", "/v1/sessions/s1/stream") as stream:
            assert stream.status_code == 200
            assert _first_data(stream).startswith("data:")
        client.cookies.clear()
        path = "/v1/sessions/s1/stream"
        with client.stream("GET", path, params={"access_token": by_query, "x": "1"}) as stream:
            assert stream.status_code == 200
            assert _first_data(stream).startswith("data:")
        for bad in (expired, forged):
            refused = client.get(path, params={"access_token": bad})
            assert refused.status_code == 401
            assert bad not in refused.text
        refused = client.post(
            "/v1/sessions/s1/events",
            params={"access_token": by_query},
            json={"type": "n", "data": {}},
        )
        assert refused.status_code == 401
        ready = client.get("/readyz")
        assert ready.json()["auth"] == "jwt"
        metrics = client.get("/metrics").text
    output = "".join(lines) + stop(server)
    assert "Application startup complete" in output
    assert 'agentstream_auth_denials_total{code="unauthorized"}' in metrics
    for secret in (SECRET, by_cookie, by_query, expired, forged):
        assert secret not in output
        assert secret not in metrics
        # Not even a recognisable piece of one (its signature).
        assert secret.rsplit(".", 1)[-1] not in output


def _first_data(stream: httpx.Response) -> str:
    """The first data line (bounded by the test's timeout)."""
    return next(line for line in stream.iter_lines() if line.startswith("data:"))


def test_auth_off_warns_at_start_up_and_in_readyz(settings: Settings) -> None:
    server, url, lines = serve(settings, AUTH_MODE="off")
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        open_read = httpx.get(f"{url}/v1/sessions/s1/events", timeout=10)
    finally:
        output = "".join(lines) + stop(server)
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert ready.json()["auth"] == "off"
    assert open_read.status_code == 200
    assert "WARNING" in output
    assert "AUTH_MODE=off" in output
