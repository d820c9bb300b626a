"""agentstream's Python client: stdlib and httpx only, nothing of the server.

async with Client("http://127.0.0.1:8000", token=...) as client:
    run = await client.start_run("demo", "echo", {"text": "hi"})
    async for event in client.stream("demo"):
        ...
"""

from agentstream_client.client import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE, Client
from agentstream_client.errors import APIError, ClientError, Unreachable
from agentstream_client.events import HISTORY_LOST, RECONNECT, RUN_ENDS, Event
from agentstream_client.stream import SessionStream

__all__ = [
    "DEFAULT_URL",
    "HISTORY_LOST",
    "RECONNECT",
    "RUN_ENDS",
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "APIError",
    "Client",
    "ClientError",
    "Event",
    "SessionStream",
    "Unreachable",
]
