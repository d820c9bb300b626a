"""What fuzzing against the document found, each pinned by a plain test."""

from __future__ import annotations

import dataclasses
import os

import httpx
import pytest

from app.settings import Secret, Settings
from app.store import tokens
from embedded.redis import stop
from embedded.runner import start_mongo
from support.servers import RunningAPI, running_api

TAG = tokens.session_tag("s")


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/v1/sessions/s%0A/events", "an id with a final newline ($ matched before it)"),
        ("/v1/sessions/s/events?limit=%D9%A3", "a limit in non-ASCII digits"),
        (f"/v1/sessions/s/events?after=%201.{TAG}", "a token with a leading space"),
        (f"/v1/sessions/s/events?after=%D9%A3.{TAG}", "a token in non-ASCII digits"),
        ("/v1/sessions/s/events?since_timestamp=0001-01-01T00:00:00%2B14:00", "before year 1"),
        ("/v1/sessions/s/stream?since_timestamp=0001-01-01T00:00:00%2B14:00", "the same, stream"),
    ],
)
async def test_input_the_document_calls_invalid_is_a_400(
    api: RunningAPI, path: str, what: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get(path)
    assert response.status_code == 400, what
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.timeout(60)
async def test_mongodb_out_of_reach_is_a_503_with_retry_after(settings: Settings) -> None:
    process, url = start_mongo(dict(os.environ))
    try:
        own = dataclasses.replace(settings, mongo_url=Secret(url))
        async with running_api(own) as api, httpx.AsyncClient(base_url=api.url) as client:
            assert (await client.get("/v1/events/e1")).status_code == 404
            stop(process)
            response = await client.get("/v1/events/e1", timeout=30)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "unavailable"
            assert int(response.headers["retry-after"]) >= 1
    finally:
        stop(process)
