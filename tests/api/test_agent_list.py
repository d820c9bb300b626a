"""GET /v1/agents: the configured agents, for the viewer's picker and for clients."""

from __future__ import annotations

import dataclasses

import httpx

from app.settings import Settings
from support.servers import running_api


async def test_the_agents_are_listed_with_their_descriptions(settings: Settings) -> None:
    configured = dataclasses.replace(
        settings, agents=("ghost=no_such_module_here:run", "boom=support.agents:boom")
    )
    async with running_api(configured) as api, httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/v1/agents")
        await api.services.mongo.drop_database(configured.mongo_db)
    assert response.status_code == 200
    agents = response.json()["agents"]
    assert agents == [
        {"name": "boom", "description": "Writes one delta, then fails."},
        {"name": "echo", "description": "stream input.text back in chunks"},
        # Code the API cannot import (it may live only in the workers' image): no description.
        {"name": "ghost", "description": ""},
        {"name": "openai", "description": "stream a chat completion"},
        {"name": "script", "description": "replay input.events with their delays"},
    ]
