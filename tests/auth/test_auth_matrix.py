"""Every protected route against every kind of token, on a real API with AUTH_MODE=jwt.

The route table below must list exactly the app's protected routes: a new route fails here
until it is added, with its expected answers.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.routing import Route

from app.application import create_app
from app.auth.routes import ProtectedRoute, is_public, unprotected
from app.settings import Settings
from support.servers import RunningAPI
from support.tokens import ALL_SCOPES, bearer, ec_keys, token

pytestmark = pytest.mark.timeout(120)

MINE, OTHER = "mine-1", "other-1"


@dataclasses.dataclass(frozen=True)
class Case:
    method: str
    template: str  # the route's path
    kind: str  # path, lookup, filter or none (scope only)
    scope: str
    ok: int
    body: dict[str, object] | None = None


CASES = [
    Case("GET", "/v1/sessions/{session_id}/stream", "path", "events:read", 200),
    Case(
        "POST",
        "/v1/sessions/{session_id}/events",
        "path",
        "events:write",
        201,
        {"type": "n", "data": {}},
    ),
    Case("GET", "/v1/sessions/{session_id}/events", "path", "events:read", 200),
    Case("GET", "/v1/sessions/{session_id}/messages", "path", "events:read", 200),
    Case(
        "POST",
        "/v1/sessions/{session_id}/runs",
        "path",
        "runs:write",
        202,
        {"agent": "echo", "input": {"text": "hi"}},
    ),
    Case("GET", "/v1/events/{event_id}", "lookup", "events:read", 200),
    Case("GET", "/v1/runs/{run_id}", "lookup", "events:read", 200),
    Case("POST", "/v1/runs/{run_id}/cancel", "lookup", "runs:write", 200),
    Case("GET", "/v1/traces/{trace_id}/events", "filter", "events:read", 200),
    Case("GET", "/v1/sessions", "filter", "events:read", 200),
    Case("GET", "/v1/agents", "none", "events:read", 200),
]


def test_the_table_lists_every_protected_route_and_the_rest_are_public(
    settings: Settings,
) -> None:
    app = create_app(settings)
    assert unprotected(app.routes) == []
    protected = set()
    for route in app.routes:
        if isinstance(route, ProtectedRoute):
            protected |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
        else:
            assert is_public(route), route
            assert isinstance(route, Route)
            assert route.path in {
                "/healthz",
                "/readyz",
                "/metrics",
                "/",
                "/viewer/{asset}",
                "/openapi.json",
                "/docs",
                "/docs/{asset}",
            }
    assert protected == {(c.method, c.template) for c in CASES}


def test_a_route_that_declares_no_access_stops_start_up(settings: Settings) -> None:
    from app.auth.routes import check_routes

    async def endpoint() -> None:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="/v1/secret"):
        check_routes([Route("/healthz", endpoint), Route("/v1/secret", endpoint)])


@dataclasses.dataclass
class World:
    client: httpx.AsyncClient
    ids: dict[str, dict[str, str]]  # session -> {event_id, run_id, trace_id}

    async def run(self, session: str, admin: str) -> str:
        response = await self.client.post(
            f"/v1/sessions/{session}/runs",
            json={"agent": "echo", "input": {"text": "x"}},
            headers=bearer(admin),
        )
        assert response.status_code == 202, response.text
        return str(response.json()["run_id"])


@pytest.fixture
async def world(jwt_api: RunningAPI) -> AsyncIterator[World]:
    admin = token(scope="admin", sessions=[])
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        ids: dict[str, dict[str, str]] = {}
        for session in (MINE, OTHER):
            trace = f"trace-{session}"
            appended = await client.post(
                f"/v1/sessions/{session}/events",
                json={"type": "note", "data": {}, "event_id": f"ev-{session}", "trace_id": trace},
                headers=bearer(admin),
            )
            assert appended.status_code == 201, appended.text
            ids[session] = {"event_id": f"ev-{session}", "trace_id": "shared-trace"}
            await client.post(
                f"/v1/sessions/{session}/events",
                json={"type": "note", "data": {"s": session}, "trace_id": "shared-trace"},
                headers=bearer(admin),
            )
        yield World(client, ids)


async def call(world: World, case: Case, session: str, headers: dict[str, str]) -> httpx.Response:
    """One request to `case`'s route about `session` (a fresh run for run lookups)."""
    params = {
        "session_id": session,
        "event_id": world.ids[session]["event_id"],
        "trace_id": world.ids[session]["trace_id"],
    }
    if "{run_id}" in case.template:
        params["run_id"] = await world.run(session, token(scope="admin", sessions=[]))
    path = case.template.format(**params)
    headers = dict(headers)
    if case.body is not None:
        headers["content-type"] = "application/json"
    request = world.client.build_request(
        case.method,
        path,
        content=None if case.body is None else orjson.dumps(case.body),
        headers=headers,
    )
    response = await world.client.send(request, stream=True)
    if response.status_code == 200 and case.template.endswith("/stream"):
        await response.aclose()  # the stream opened: that is the answer
    else:
        await response.aread()
    return response


def none_token() -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    claims = {"sub": "x", "exp": int(time.time()) + 60, "scope": "admin", "sessions": ["*"]}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


UNAUTHORIZED = {
    "no token": {},
    "not a bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
    "malformed": bearer("abc.def"),
    "wrong key": bearer(token(key="another-secret-of-at-least-32-bytes!!")),
    "alg none": bearer(none_token()),
    "expired": bearer(token(ttl=-60)),
    "no sub": bearer(token(drop=("sub",))),
    "no exp": bearer(token(drop=("exp",))),
    "other algorithm": bearer(token(key=ec_keys()[0], algorithm="ES256")),
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.template}")
async def test_each_route_refuses_bad_tokens_and_grants_exactly_its_scope_and_sessions(
    world: World, case: Case
) -> None:
    for name, headers in UNAUTHORIZED.items():
        response = await call(world, case, MINE, headers)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"

    covered = {
        "exact": token(scope=case.scope, sessions=[MINE]),
        "prefix": token(scope=case.scope, sessions=["mine-*"]),
        "every session": token(scope=case.scope, sessions=["*"]),
        "admin": token(scope="admin", sessions=[]),
    }
    for name, value in covered.items():
        response = await call(world, case, MINE, bearer(value))
        assert response.status_code == case.ok, (name, response.text)

    others = [s for s in ALL_SCOPES.split() if s != case.scope]
    no_scope = await call(world, case, MINE, bearer(token(scope=" ".join(others), sessions=["*"])))
    assert no_scope.status_code == 403, no_scope.text
    assert no_scope.json()["error"]["code"] == "forbidden"

    elsewhere = await call(world, case, OTHER, bearer(token(scope=ALL_SCOPES, sessions=[MINE])))
    if case.kind == "path":
        assert elsewhere.status_code == 403, elsewhere.text
        assert elsewhere.json()["error"]["code"] == "forbidden"
    elif case.kind == "lookup":
        assert elsewhere.status_code == 404, elsewhere.text
        missing = await call_missing(world, case)
        assert elsewhere.json()["error"]["code"] == "not_found"
        # Exactly the answer a missing id gets, but for the id itself.
        assert (
            elsewhere.json()["error"]["message"].split()[:2]
            == (missing.json()["error"]["message"].split()[:2])
        )
        # Outside its sessions, even a token without the scope learns nothing more.
        blind = await call(world, case, OTHER, bearer(token(scope="", sessions=[MINE])))
        assert blind.status_code == 404, blind.text
    elif case.kind == "none":  # no session involved: the scope alone decides
        assert elsewhere.status_code == 200, elsewhere.text
    else:
        assert elsewhere.status_code == 200, elsewhere.text
        body = elsewhere.json()
        found = body.get("events", body.get("sessions"))
        assert found, body
        assert {e["session_id"] for e in found} == {MINE}


async def call_missing(world: World, case: Case) -> httpx.Response:
    path = case.template.format(event_id="no-such-event", run_id="no-such-run")
    response = await world.client.request(
        case.method,
        path,
        headers={**bearer(token(sessions=["*"])), "content-type": "application/json"},
    )
    assert response.status_code == 404
    return response
