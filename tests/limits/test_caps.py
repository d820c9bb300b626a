"""Stream caps and the write rate limit on a real `app serve`, per subject: the client address
(auth off), with X-Forwarded-For trusted from FORWARDED_ALLOW_IPS (127.0.0.1) only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from support.serve import ServedAPI, module_settings, serving
from support.sse import open_stream
from support.waits import eventually_async

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedAPI]:
    settings = module_settings(mongo_url, redis_url)
    with serving(
        settings,
        tmp_path_factory.mktemp("caps"),
        SSE_MAX_CONNECTIONS="3",
        SSE_MAX_CONNECTIONS_PER_SUBJECT="2",
        WRITE_RATE_LIMIT="2",
        SSE_TIMEOUT="0",
    ) as served:
        yield served


@contextlib.asynccontextmanager
async def client_from(api: ServedAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches the server)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with api.client(transport=transport) as client:
        yield client


async def open_streams(api: ServedAPI) -> float:
    return await api.metric("agentstream_sse_connections")


async def test_stream_caps_per_subject_then_per_process(api: ServedAPI) -> None:
    async with (
        client_from(api, "127.0.0.1") as one,
        client_from(api, "127.0.0.2") as two,
        client_from(api, "127.0.0.3") as three,
    ):
        async with open_stream(one, "caps") as a, open_stream(one, "caps") as b:
            assert (a.response.status_code, b.response.status_code) == (200, 200)
            async with open_stream(one, "caps") as refused:
                assert refused.response.status_code == 429
                assert refused.response.json()["error"]["code"] == "too_many_streams"
                assert int(refused.response.headers["retry-after"]) >= 1
            async with open_stream(two, "caps") as c:
                assert c.response.status_code == 200  # another subject: its own budget
                assert await open_streams(api) == 3
                async with open_stream(three, "caps") as full:
                    assert full.response.status_code == 503
                    assert full.response.json()["error"]["code"] == "over_capacity"
                    assert int(full.response.headers["retry-after"]) >= 1
        await eventually_async(lambda: _is(api, 0), what="every slot released")
        async with open_stream(three, "caps") as again:
            assert again.response.status_code == 200
    rejected = 'agentstream_limit_rejections_total{code="%s"}'
    assert await api.metric(rejected % "too_many_streams") >= 1
    assert await api.metric(rejected % "over_capacity") >= 1
    assert await api.metric("agentstream_sse_connection_limit") == 3


async def _is(api: ServedAPI, count: int) -> bool:
    return await open_streams(api) == count


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(api: ServedAPI) -> None:
    async with client_from(api, "127.0.0.1") as proxy, client_from(api, "127.0.0.4") as other:
        headers = {"X-Forwarded-For": "10.1.1.1"}
        async with (
            proxy.stream("GET", "/v1/sessions/xff/stream", headers=headers) as a,
            proxy.stream("GET", "/v1/sessions/xff/stream", headers=headers) as b,
            proxy.stream("GET", "/v1/sessions/xff/stream", headers=headers) as c,
        ):
            assert [r.status_code for r in (a, b, c)] == [200, 200, 429]  # 10.1.1.1's two
        spoofed = {"X-Forwarded-For": "10.2.2.2"}
        async with (
            other.stream("GET", "/v1/sessions/xff/stream", headers=spoofed) as d,
            other.stream(
                "GET", "/v1/sessions/xff/stream", headers={"X-Forwarded-For": "10.3.3.3"}
            ) as e,
            other.stream("GET", "/v1/sessions/xff/stream", headers=spoofed) as f,
        ):
            # 127.0.0.4 is no trusted proxy: its header is ignored, all three are 127.0.0.4's
            assert [r.status_code for r in (d, e, f)] == [200, 200, 429]


async def test_the_write_rate_limit_is_per_subject(api: ServedAPI) -> None:
    def batch(n: int) -> dict[str, object]:
        return {"events": [{"type": "w", "data": {"i": i}} for i in range(n)]}

    async with client_from(api, "127.0.0.1") as proxy:
        alice = {"X-Forwarded-For": "10.5.5.5"}
        bob = {"X-Forwarded-For": "10.6.6.6"}
        burst = await proxy.post("/v1/sessions/rate/events", json=batch(4), headers=alice)
        assert burst.status_code == 201  # a burst is twice the rate
        over = await proxy.post("/v1/sessions/rate/events", json=batch(2), headers=alice)
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "rate_limited"
        assert int(over.headers["retry-after"]) >= 1
        assert (
            await proxy.post("/v1/sessions/rate/events", json=batch(4), headers=bob)
        ).status_code == 201
        never = await proxy.post(
            "/v1/sessions/rate/events", json=batch(5), headers={"X-Forwarded-For": "10.7.7.7"}
        )
        assert never.status_code == 413  # more than one whole burst: no retry would pass
        listed = await proxy.get("/v1/sessions/rate/events", headers=alice)
        assert len(listed.json()["events"]) == 8  # refused writes stored nothing

        async def refilled() -> bool:
            answer = await proxy.post("/v1/sessions/rate/events", json=batch(1), headers=alice)
            assert answer.status_code in (201, 429)
            return answer.status_code == 201

        await eventually_async(refilled, 10, "alice's bucket to refill")
    assert await api.metric('agentstream_limit_rejections_total{code="rate_limited"}') >= 1
