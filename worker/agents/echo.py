"""`echo`: streams `text` back in `chunk`-character deltas, `delay` seconds apart."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from worker.agents import check_fields, int_field, number_field, string_field
from worker.runtime import Agent, AgentContext

MAX_TEXT = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class EchoInput:
    text: str
    chunk: int = 1
    delay: float = 0.0


def parse(value: dict[str, Any]) -> EchoInput:
    check_fields(value, {"text", "chunk", "delay"})
    return EchoInput(
        text=string_field(value, "text", max_chars=MAX_TEXT),
        chunk=int_field(value, "chunk", low=1, high=10_000, default=1),
        delay=number_field(value, "delay", low=0.0, high=60.0, default=0.0),
    )


async def run(ctx: AgentContext) -> None:
    spec = parse(ctx.input)
    async with ctx.stream_message(role="assistant") as message:
        for start in range(0, len(spec.text), spec.chunk):
            if start and spec.delay:
                await asyncio.sleep(spec.delay)
            await message.delta(spec.text[start : start + spec.chunk])


agent = Agent(run=run, validate=parse, description="stream input.text back in chunks")
