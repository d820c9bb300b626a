"""`script`: replays a list of events with given delays, for load tests and demos.

Input: `{"events": [{"type": str, "data": {...}, "delay": seconds}, ...], "repeat": 1}`.
Each event is emitted `delay` seconds after the previous one (default 0).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from app.errors import APIError
from app.validation import event_type, json_object
from worker.agents import check_fields, int_field, number_field
from worker.runtime import Agent, AgentContext, InputError

MAX_EVENTS = 10_000
MAX_TOTAL = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    type: str
    data: dict[str, Any]
    delay: float


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    steps: tuple[Step, ...]
    repeat: int


def parse(value: dict[str, Any]) -> Script:
    check_fields(value, {"events", "repeat"})
    events = value.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise InputError(f"input.events must be an array of 1 to {MAX_EVENTS} events")
    repeat = int_field(value, "repeat", low=1, high=1000, default=1)
    if repeat * len(events) > MAX_TOTAL:
        raise InputError(f"input.events times input.repeat must be at most {MAX_TOTAL}")
    return Script(tuple(_step(item, i) for i, item in enumerate(events)), repeat)


def _step(item: object, index: int) -> Step:
    where = f"input.events[{index}]"
    if not isinstance(item, dict):
        raise InputError(f"{where} must be an object")
    check_fields(item, {"type", "data", "delay"}, where=where)
    try:
        kind = event_type(item.get("type"), f"{where}.type")
        data = json_object(item.get("data", {}), f"{where}.data")
    except APIError as exc:
        raise InputError(exc.message) from None
    if kind.startswith("run."):
        raise InputError(f"{where}.type: run.* events belong to the run's lifecycle")
    delay = number_field(item, "delay", low=0.0, high=60.0, default=0.0, where=where)
    return Step(kind, data, delay)


async def run(ctx: AgentContext) -> None:
    script = parse(ctx.input)
    for _ in range(script.repeat):
        for step in script.steps:
            if step.delay:
                await asyncio.sleep(step.delay)
            await ctx.emit(step.type, step.data)


agent = Agent(run=run, validate=parse, description="replay input.events with their delays")
