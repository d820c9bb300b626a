"""Where a running `./dev serve` keeps its embedded MongoDB and Redis, for the other commands.

`app dev` writes `.dev-run.json` in its working directory (the project, through ./dev) once
its embedded servers answer, and removes it when it stops. `app migrate`, `app stats` and
`worker --check` read it when MONGO_URL or REDIS_URL is unset, and say so in one line. Only
embedded servers are written down: their URLs hold no secret.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

STATE_FILE = ".dev-run.json"


def state_path(directory: Path | None = None) -> Path:
    return (directory or Path.cwd()) / STATE_FILE


def write_state(urls: Mapping[str, str], directory: Path | None = None) -> Path:
    """Record this process's embedded servers (`{"MONGO_URL": ..., "REDIS_URL": ...}`)."""
    path = state_path(directory)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **urls}))
    temporary.replace(path)
    return path


def remove_state(directory: Path | None = None) -> None:
    """Remove the state file if this process wrote it."""
    path = state_path(directory)
    if _read(path).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def adopt(
    environ: MutableMapping[str, str], names: Sequence[str], directory: Path | None = None
) -> str | None:
    """Set the unset variables among `names` from a live dev run's state file.

    Returns the line to show the user, or None when nothing was taken.
    """
    missing = [name for name in names if not environ.get(name)]
    if not missing:
        return None
    path = state_path(directory)
    state = _read(path)
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    taken = {name: str(state[name]) for name in missing if isinstance(state.get(name), str)}
    if not taken:
        return None
    environ.update(taken)
    shown = ", ".join(f"{name}={url}" for name, url in taken.items())
    return f"using the running dev run's servers (pid {pid}, {path}): {shown}"


def _read(path: Path) -> dict[str, object]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
