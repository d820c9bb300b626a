"""`openai`: streams a chat completion from any OpenAI-compatible endpoint, over httpx.

Input: `{"prompt": str}` or `{"messages": [{"role", "content"}, ...]}`, and optionally `model`,
`temperature`, `max_tokens` and `parent_id` (the parent of the assistant message). The base URL,
key and default model come from OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL. A provider
error (an HTTP status >= 400, or an error object in the stream) fails the run with a message
such as "openai: 429 rate_limit_exceeded: ...".
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from app.errors import APIError
from app.validation import optional_identifier
from worker.agents import check_fields, int_field, number_field, string_field
from worker.runtime import Agent, AgentContext, InputError

if TYPE_CHECKING:
    from app.settings import Settings

MAX_MESSAGES = 1000
MAX_CHARS = 100_000
TIMEOUT = httpx.Timeout(120.0, connect=10.0, pool=10.0)


class ProviderError(RuntimeError):
    """The provider answered with an error."""


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    messages: list[dict[str, str]]
    model: str | None
    options: dict[str, Any]
    parent_id: str | None


def parse(value: dict[str, Any]) -> Completion:
    check_fields(value, {"prompt", "messages", "model", "temperature", "max_tokens", "parent_id"})
    if ("prompt" in value) == ("messages" in value):
        raise InputError("input needs either prompt or messages")
    if "prompt" in value:
        messages = [{"role": "user", "content": string_field(value, "prompt", max_chars=MAX_CHARS)}]
    else:
        messages = _messages(value["messages"])
    options: dict[str, Any] = {}
    if "temperature" in value:
        options["temperature"] = number_field(value, "temperature", low=0, high=2, default=1)
    if "max_tokens" in value:
        options["max_tokens"] = int_field(value, "max_tokens", low=1, high=10**6, default=1)
    model = string_field(value, "model", max_chars=200) if "model" in value else None
    try:
        parent_id = optional_identifier(value.get("parent_id"), "input.parent_id")
    except APIError as exc:
        raise InputError(exc.message) from None
    return Completion(messages, model, options, parent_id)


def _messages(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MESSAGES:
        raise InputError(f"input.messages must be an array of 1 to {MAX_MESSAGES} messages")
    checked = []
    for index, item in enumerate(value):
        where = f"input.messages[{index}]"
        if not isinstance(item, dict):
            raise InputError(f"{where} must be an object")
        check_fields(item, {"role", "content", "name"}, where=where)
        message = {
            "role": string_field(item, "role", max_chars=64, where=where),
            "content": string_field(item, "content", max_chars=MAX_CHARS, where=where),
        }
        if "name" in item:
            message["name"] = string_field(item, "name", max_chars=64, where=where)
        checked.append(message)
    return checked


async def run(ctx: AgentContext) -> None:
    completion = parse(ctx.input)
    settings = ctx.settings
    headers = {"Accept": "text/event-stream"}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get()}"
    body = {
        "model": completion.model or settings.openai_model,
        "messages": completion.messages,
        "stream": True,
        **completion.options,
    }
    url = settings.openai_base_url.rstrip("/") + "/chat/completions"
    try:
        async with (
            httpx.AsyncClient(timeout=TIMEOUT, headers=headers) as client,
            client.stream("POST", url, json=body) as response,
        ):
            if response.status_code >= 400:
                await response.aread()
                raise ProviderError(_http_error(response))
            async with ctx.stream_message("assistant", parent_id=completion.parent_id) as message:
                async for delta in _deltas(response):
                    await message.delta(delta)
    except httpx.HTTPError as exc:
        reason = str(exc) or "no detail"
        raise ProviderError(f"openai: {type(exc).__name__} at {url}: {reason}") from exc


async def _deltas(response: httpx.Response) -> AsyncIterator[str]:
    """The text deltas of a chat.completions stream (`data: {chunk}` lines, `data: [DONE]`)."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ProviderError(f"openai: malformed stream chunk: {payload[:200]!r}") from None
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            raise ProviderError(_describe("stream error", chunk["error"]))
        for choice in chunk.get("choices") or ():
            delta = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
            if isinstance(delta, str) and delta:
                yield delta


def missing_key(settings: Settings) -> str | None:
    """The start-up warning when the agent has no OPENAI_API_KEY, else None."""
    if settings.openai_api_key is not None:
        return None
    return (
        f"agent openai: OPENAI_API_KEY is not set, so its runs send no key to"
        f" {settings.openai_base_url} (fine only for an endpoint that needs none)"
    )


def _http_error(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return _describe(str(response.status_code), body["error"])
    text = response.text.strip()[:200] or response.reason_phrase
    return f"openai: {response.status_code}: {text}"


def _describe(status: str, error: object) -> str:
    if not isinstance(error, dict):
        return f"openai: {status}: {str(error)[:500]}"
    code = error.get("code") or error.get("type") or "error"
    message = str(error.get("message") or "").strip()[:500]
    return f"openai: {status} {code}: {message}"


agent = Agent(run=run, validate=parse, description="stream a chat completion")
