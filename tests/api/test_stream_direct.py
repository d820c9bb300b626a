"""Live frames go straight from the hub to the socket under the API's own uvicorn protocol,
and through ASGI `send` under any other: the stream is the same on both."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from support.servers import running_api
from support.sse import open_stream
from support.waits import eventually


@pytest.mark.parametrize(("http", "direct"), [(None, True), ("h11", False)], ids=["ours", "h11"])
async def test_live_events_arrive_in_order_on_either_path(
    settings: Settings, http: str | None, direct: bool
) -> None:
    async with (
        running_api(settings, http=http) as api,
        httpx.AsyncClient(base_url=api.url) as client,
    ):
        hub = api.services.hub
        first = await client.post("/v1/sessions/d/events", json={"type": "old", "data": {}})
        async with open_stream(client, "d") as stream:
            [replayed] = await stream.take(1)
            assert replayed.id == first.json()["events"][0]["id"]
            await eventually(lambda: "d" in hub.positions(), what="live")
            sent = []
            for n in range(3):  # one at a time: each reaches a stream waiting with nothing held
                response = await client.post(
                    "/v1/sessions/d/events", json={"type": "live", "data": {"n": n}}
                )
                sent.append(response.json()["events"][0]["id"])
                [event] = await stream.take(1)
                assert event.id == sent[-1]
                assert event.data["data"] == {"n": n}
        assert hub.written == (3 if direct else 0)
        await eventually(lambda: api.services.metrics.deliveries._value.get() == 4)
