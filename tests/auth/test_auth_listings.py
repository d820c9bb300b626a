"""Listings keep to the token's sessions in the query itself: GET /v1/sessions and traces."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import monitoring

from app.settings import Settings
from support.servers import RunningAPI, running_api
from support.tokens import bearer, token

pytestmark = pytest.mark.timeout(60)

SESSIONS = ["a1", "demo-x", "b1", "demo-y", "a10"]


class Finds(monitoring.CommandListener):
    """The filters of `find` commands, per collection."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append((str(event.command["find"]), dict(event.command["filter"])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclasses.dataclass
class Listed:
    api: RunningAPI
    client: httpx.AsyncClient
    finds: Finds
    last_ids: dict[str, str]


@pytest.fixture
async def listed(jwt_settings: Settings) -> AsyncIterator[Listed]:
    finds = Finds()
    async with running_api(jwt_settings, mongo_listeners=[finds]) as api:
        admin = bearer(token(scope="admin", sessions=[]))
        last_ids = {}
        async with httpx.AsyncClient(base_url=api.url, timeout=15) as client:
            for session in SESSIONS:
                response = await client.post(
                    f"/v1/sessions/{session}/events",
                    json={
                        "events": [
                            {"type": "n", "data": {}, "trace_id": "t-1"},
                            {"type": "n", "data": {}},
                        ]
                    },
                    headers=admin,
                )
                assert response.status_code == 201, response.text
                last_ids[session] = response.json()["events"][-1]["id"]
            yield Listed(api, client, finds, last_ids)
        await api.services.mongo.drop_database(jwt_settings.mongo_db)


async def newest_first(listed: Listed, sessions: list[str]) -> list[str]:
    docs = await listed.api.services.collections.sessions.find({"_id": {"$in": sessions}}).to_list()
    docs.sort(key=lambda d: (d["updated_at"], d["_id"]), reverse=True)
    return [d["_id"] for d in docs]


async def pages(listed: Listed, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": limit}
    for _ in range(20):
        response = await listed.client.get("/v1/sessions", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["sessions"]
        if body["next"] is None:
            return found
        params["before"] = body["next"]
    raise AssertionError("paging did not end")


async def test_sessions_lists_the_covered_sessions_newest_first_by_cursor(
    listed: Listed,
) -> None:
    headers = bearer(token(scope="events:read", sessions=["demo*", "a1"]))
    expected = await newest_first(listed, ["a1", "demo-x", "demo-y"])
    for limit in (1, 2, 50):
        listed.finds.filters.clear()
        found = await pages(listed, headers, limit)
        assert [s["session_id"] for s in found] == expected
        assert all(s["last_event_id"] == listed.last_ids[s["session_id"]] for s in found)
        assert all(s["updated_at"].endswith("Z") for s in found)
        # The patterns are in every query that reaches the database: no filtering afterwards.
        queries = [f for collection, f in listed.finds.filters if collection == "sessions"]
        assert queries
        for query in queries:
            clauses = session_clauses(query)
            assert {"_id": {"$in": ["a1"]}} in clauses, query
            assert {"_id": {"$gte": "demo", "$lt": "demp"}} in clauses, query

    admin = await pages(listed, bearer(token(scope="admin", sessions=[])), 2)
    assert [s["session_id"] for s in admin] == await newest_first(listed, SESSIONS)
    nothing = await listed.client.get("/v1/sessions", headers=bearer(token(sessions=[])))
    assert nothing.json() == {"sessions": [], "next": None}


def session_clauses(query: dict[str, Any]) -> list[dict[str, Any]]:
    """The clauses of the session condition, wherever $and / $or put them."""
    clauses: list[dict[str, Any]] = []
    for part in query.get("$and", [query]):
        clauses += part.get("$or", [part])
    return clauses


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"before": "x"}, "before")],
)
async def test_bad_paging_is_a_400(listed: Listed, params: dict[str, str], fragment: str) -> None:
    response = await listed.client.get(
        "/v1/sessions", params=params, headers=bearer(token(sessions=["*"]))
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


async def test_a_trace_shows_only_covered_sessions_by_its_query(listed: Listed) -> None:
    listed.finds.filters.clear()
    response = await listed.client.get(
        "/v1/traces/t-1/events", headers=bearer(token(scope="events:read", sessions=["a1*"]))
    )
    assert response.status_code == 200, response.text
    assert sorted(e["session_id"] for e in response.json()["events"]) == ["a1", "a10"]
    events_finds = [f for collection, f in listed.finds.filters if collection == "events"]
    assert events_finds == [{"trace_id": "t-1", "session_id": {"$gte": "a1", "$lt": "a2"}}]
    everyone = await listed.client.get(
        "/v1/traces/t-1/events", headers=bearer(token(scope="admin", sessions=[]))
    )
    assert len(everyone.json()["events"]) == len(SESSIONS)
