"""Agents by name: the built-ins, the entry-point group `agentstream.agents`, and the AGENTS
setting (`name=package.module:callable`, comma-separated). A later source overrides an earlier
one. A target is an `Agent` or a bare `async def agent(ctx)`; it is imported on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import logging
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from worker.runtime import Agent, InputError

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agentstream.agents"
BUILTINS: Mapping[str, str] = {
    "echo": "worker.agents.echo:agent",
    "openai": "worker.agents.openai:agent",
    "script": "worker.agents.script:agent",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UnknownAgent(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown agent {name!r}; known agents: {', '.join(known) or 'none'}")
        self.name = name


class AgentLoadError(RuntimeError):
    """An agent is registered but its target cannot be imported or is not callable."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    target: str  # "package.module:attribute"
    source: str  # "builtin", "entry point" or "AGENTS"


class Registry:
    def __init__(self, specs: Mapping[str, AgentSpec]) -> None:
        self._specs = dict(specs)
        self._loaded: dict[str, Agent] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        return _registry(settings.agents)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def spec(self, name: str) -> AgentSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownAgent(name, self.names()) from None

    def load(self, name: str) -> Agent:
        """The agent named `name`, imported on first use (UnknownAgent, AgentLoadError)."""
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = _load(self.spec(name))
        return found

    def problems(self) -> list[str]:
        """Every registered agent that cannot be loaded, one line each (imports them all)."""
        found = []
        for name in self.names():
            try:
                self.load(name)
            except AgentLoadError as exc:
                found.append(str(exc))
        return found

    def validate(self, name: str, value: dict[str, Any]) -> None:
        """Run the agent's input check, if it has one (raises InputError)."""
        agent = self.load(name)
        if agent.validate is not None:
            agent.validate(value)


@functools.cache
def _registry(agents: tuple[str, ...]) -> Registry:
    specs = {name: AgentSpec(name, target, "builtin") for name, target in BUILTINS.items()}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _add(specs, AgentSpec(entry.name, entry.value.replace(" ", ""), "entry point"))
    for item in agents:
        name, _, target = item.partition("=")
        _add(specs, AgentSpec(name.strip(), target.strip(), "AGENTS"))
    return Registry(specs)


def _add(specs: dict[str, AgentSpec], spec: AgentSpec) -> None:
    if not _NAME.match(spec.name) or not _TARGET.match(spec.target):
        logger.warning("ignoring agent %r = %r from %s", spec.name, spec.target, spec.source)
        return
    previous = specs.get(spec.name)
    if previous is not None:
        logger.info(
            "agent %s: %s (%s) overrides %s", spec.name, spec.target, spec.source, previous.source
        )
    specs[spec.name] = spec


def _load(spec: AgentSpec) -> Agent:
    module_name, _, attribute = spec.target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise AgentLoadError(
            f"agent {spec.name!r} ({spec.source}) cannot be loaded from {spec.target}: {exc}"
        ) from exc
    if isinstance(found, Agent):
        return found
    if callable(found):
        return Agent(run=found)
    raise AgentLoadError(f"agent {spec.name!r}: {spec.target} is not callable")


# Input checks shared by the built-in agents: each raises InputError naming the field.


def check_fields(value: Mapping[str, Any], allowed: set[str], *, where: str = "input") -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InputError(f"{where} has unknown fields: {', '.join(unknown)}")


def string_field(
    value: Mapping[str, Any],
    field: str,
    *,
    max_chars: int,
    default: str | None = None,
    where: str = "input",
) -> str:
    found = value.get(field, default)
    if found is None:
        raise InputError(f"{where}.{field} is required")
    if not isinstance(found, str):
        raise InputError(f"{where}.{field} must be a string, got {_kind(found)}")
    if len(found) > max_chars:
        raise InputError(f"{where}.{field} is longer than {max_chars} characters")
    return found


def int_field(
    value: Mapping[str, Any], field: str, *, low: int, high: int, default: int, where: str = "input"
) -> int:
    found = value.get(field, default)
    if isinstance(found, bool) or not isinstance(found, int) or not low <= found <= high:
        raise InputError(f"{where}.{field} must be a whole number from {low} to {high}")
    return found


def number_field(
    value: Mapping[str, Any],
    field: str,
    *,
    low: float,
    high: float,
    default: float,
    where: str = "input",
) -> float:
    found = value.get(field, default)
    if (
        isinstance(found, bool)
        or not isinstance(found, int | float)
        or not math.isfinite(found)
        or not low <= found <= high
    ):
        raise InputError(f"{where}.{field} must be a number from {low:g} to {high:g}")
    return float(found)


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
