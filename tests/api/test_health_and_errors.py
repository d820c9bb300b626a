import asyncio
import logging
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from support.servers import RunningAPI
from support.waits import eventually


async def test_healthz_and_readyz(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "mongo": True,
        "redis": True,
        "migrations": True,
        "feed": True,
    }
    assert body["checks"]["feed"]["mode"] in ("change_stream", "poll")


async def test_unknown_paths_and_methods_get_the_json_error_shape(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        missing = await client.get("/nowhere")
        wrong = await client.delete("/healthz")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_a_500_never_leaks_a_stack_trace(
    api: RunningAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: object) -> None:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    app = api.server.config.app
    everyone = Access(Scope.EVENTS_READ, SessionRule.NONE)  # AUTH_MODE=off here
    app.router.routes.append(ProtectedRoute("/broken", broken, methods=["GET"], access=everyone))
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/broken")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal server error"}}
    assert "secret" not in response.text
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 1  # once, not once by us and again by uvicorn
    assert logged[0].getMessage() == "unhandled error on GET /broken"


async def test_a_client_gone_mid_body_is_no_error(
    api: RunningAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.errors")
    address = urlsplit(api.url)
    head = (
        b"POST /v1/sessions/s/events HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )

    def send_half() -> None:
        with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
            sock.sendall(head + b'{"type": "t", "data": {')

    await asyncio.to_thread(send_half)
    gone = "client went away during POST /v1/sessions/s/events"
    await eventually(
        lambda: any(r.getMessage() == gone for r in caplog.records),
        what="the server to notice the client left",
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
