"""The middleware on a tiny inline app: what a route sees, and what it cannot get wrong."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import errors
from app.auth.middleware import SUBJECT, AuthMiddleware, check_found
from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.auth.verifier import Verifier
from app.server import Server
from support.tokens import SECRET, bearer, token


async def echo(request: Request) -> Response:
    return JSONResponse(
        {"query": request.url.query, "subject": request.scope.get(SUBJECT)},
    )


async def forgetful_lookup(request: Request) -> Response:
    return JSONResponse({"secret": "in some session"})


async def careful_lookup(request: Request) -> Response:
    check_found(request, request.path_params["key"], errors.NotFound("no such thing"))
    return JSONResponse({"ok": True})


def app() -> Starlette:
    routes = [
        ProtectedRoute("/s/{session_id}", echo, methods=["GET"], access=Access(Scope.EVENTS_READ)),
        ProtectedRoute(
            "/forgetful/{key}",
            forgetful_lookup,
            methods=["GET"],
            access=Access(Scope.EVENTS_READ, SessionRule.LOOKUP),
        ),
        ProtectedRoute(
            "/careful/{key}",
            careful_lookup,
            methods=["GET"],
            access=Access(Scope.EVENTS_READ, SessionRule.LOOKUP),
        ),
        Route("/healthz", echo),
    ]
    verifier = Verifier(SECRET, "HS256")
    built = Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, verifier=verifier)],
        exception_handlers={errors.APIError: errors.api_error_handler},
    )
    built.add_route("/added-later", echo)  # neither protected nor public
    return built


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t")


async def test_the_route_sees_the_subject_but_never_the_query_token() -> None:
    value = token("alice", sessions=["s1"])
    async with client() as http:
        response = await http.get("/s/s1", params={"a": "1", "access_token": value, "b": "2"})
        assert response.status_code == 200
        assert response.json() == {"query": "a=1&b=2", "subject": "alice"}
        head = await http.head("/s/s1", headers=bearer(value))
        assert head.status_code == 200
        public = await http.get("/healthz", params={"access_token": value})
        assert public.json() == {"query": "", "subject": None}


async def test_a_lookup_that_forgets_its_check_answers_500_not_the_data() -> None:
    async with client() as http:
        headers = bearer(token(sessions=["*"]))
        forgot = await http.get("/forgetful/k1", headers=headers)
        assert forgot.status_code == 500
        assert "secret" not in forgot.text
        checked = await http.get("/careful/k1", headers=headers)
        assert checked.status_code == 200
        hidden = await http.get("/careful/k1", headers=bearer(token(sessions=["k2"])))
        assert hidden.status_code == 404
        assert hidden.json()["error"]["message"] == "no such thing"


async def test_unknown_paths_and_methods_answer_as_usual_and_undeclared_routes_are_refused() -> (
    None
):
    async with client() as http:
        assert (await http.get("/nowhere")).status_code == 404
        assert (await http.post("/s/s1")).status_code == 405
        assert (await http.get("/added-later", headers=bearer(token()))).status_code == 403


async def test_uvicorn_access_logs_never_hold_the_query_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`app serve` keeps uvicorn's access log off; turned on, it still logs no token, because
    the middleware removes the parameter from the very scope uvicorn logs from."""
    config = uvicorn.Config(app(), host="127.0.0.1", port=0, access_log=True, log_config=None)
    server = Server(config)
    access = logging.getLogger("uvicorn.access")
    propagate = access.propagate
    access.propagate = True  # an earlier Config(access_log=False) turns it off process-wide
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.ready.wait(), 20)
        value = token("alice", sessions=["s1"])
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                response = await http.get("/s/s1", params={"limit": "5", "access_token": value})
                refused = await http.get("/s/s1", params={"access_token": value + "x"})
        assert response.status_code == 200
        assert refused.status_code == 401
        lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
        assert any("/s/s1?limit=5" in line for line in lines), lines
        assert all(value not in line for line in lines), lines
        assert all("access_token" not in line for line in lines), lines
    finally:
        access.propagate = propagate
        server.should_exit = True
        await asyncio.wait_for(task, 20)
