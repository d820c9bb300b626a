"""Agents for end-to-end tests, registered with AGENTS=boom=support.agents:boom."""

from __future__ import annotations

from worker.runtime import AgentContext


async def boom(ctx: AgentContext) -> None:
    """Writes one delta, then fails."""
    async with ctx.stream_message(role="assistant") as message:
        await message.delta("about to fail")
    raise RuntimeError("boom: " + str(ctx.input.get("why", "no reason")))
