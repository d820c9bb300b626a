"""The middleware on a tiny inline app: what a route sees, and what it cannot get wrong."""

from __future__ import annotations

import httpx
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
