"""GET /v1/traces/{trace_id}/events pages like session history: `limit`, `after`, `next`."""

from __future__ import annotations

import httpx
import pytest

from support.servers import RunningAPI

pytestmark = pytest.mark.timeout(60)


async def test_a_trace_across_sessions_pages_without_gap_or_repeat(api: RunningAPI) -> None:
    written: list[str] = []
    async with httpx.AsyncClient(base_url=api.url) as client:
        for _ in range(3):
            for session in ("b-session", "a-session", "c-session"):
                events = [{"type": "t", "data": {"n": i}, "trace_id": "tr-page"} for i in range(3)]
                events.append({"type": "other", "data": {}, "trace_id": "tr-else"})
                response = await client.post(
                    f"/v1/sessions/{session}/events", json={"events": events}
                )
                assert response.status_code == 201, response.text
                written += [e["event_id"] for e in response.json()["events"][:3]]
        whole = (await client.get("/v1/traces/tr-page/events")).json()
        paged: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            params = {"limit": "4"} | ({"after": after} if after else {})
            response = await client.get("/v1/traces/tr-page/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            paged += [e["event_id"] for e in page["events"]]
            pages += 1
            after = page["next"]
            if after is None:
                break
        bad = await client.get("/v1/traces/tr-page/events", params={"after": "1.00000000"})
    assert whole["next"] is None
    assert [e["event_id"] for e in whole["events"]] == paged
    assert sorted(paged) == sorted(written)
    assert len(paged) == len(set(paged)) == 27
    assert pages == 7  # 27 events in pages of 4
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "after is not a trace cursor of this service"
