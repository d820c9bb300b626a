"""py-spy profiles of a server process, and the summary BENCHMARKS.md shows of them.

`record` samples a running process for a while (py-spy `--format raw`: one collapsed stack
per line with its sample count; open it with speedscope or flamegraph.pl). `summarize` turns
it into the functions holding the CPU: "self" is the share of samples in which the function
was running, "total" the share in which it was on the stack.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import re
import shutil
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, *, rate: int = 200) -> Path | None:
    """Sample `pid` for `seconds`; the raw profile's path, or None when py-spy is unavailable."""
    binary = py_spy()
    if binary is None:
        logger.warning("py-spy is not installed; no profile")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(seconds + 30):
            _, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        logger.warning("py-spy did not finish; no profile")
        return None
    if process.returncode != 0 or not out.exists():
        logger.warning("py-spy failed: %s", err.decode(errors="replace").strip()[-300:])
        return None
    return out


@dataclasses.dataclass(frozen=True)
class Hotspot:
    function: str
    self_share: float
    total_share: float


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3.13/", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def summarize(raw: Path, top: int = 12) -> tuple[int, list[Hotspot]]:
    """Total samples, and the `top` functions by self time with their inclusive share."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    hotspots = [
        Hotspot(name, count / samples, inclusive[name] / samples)
        for name, count in own.most_common(top)
    ]
    return samples, hotspots


def inclusive_share(raw: Path, needle: str) -> float:
    """The share of samples with a frame whose text contains `needle`."""
    hit = samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        samples += int(count_text)
        if needle in stack:
            hit += int(count_text)
    return hit / samples if samples else 0.0
