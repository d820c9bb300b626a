"""`./dev serve`: the API and a worker, on embedded MongoDB and Redis where none is configured.

Each embedded server runs in its own process, so the emulator's work never blocks the API's
event loop. Ctrl-C or SIGTERM stops every process this started, newest first.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from app.settings import Settings, redact_url
from embedded.redis import start_redis, stop

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".data" / "mongo"


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this runner dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: list[str], env: dict[str, str], **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, *args], env=env, preexec_fn=_die_with_parent, **options
    )


def start_mongo(
    env: dict[str, str], *, extra_args: Sequence[str] = (), timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """The embedded MongoDB-protocol server (a replica set with change streams by default)."""
    args = ["-m", "embedded.mongo", "--port", "0", *extra_args]
    process = spawn(args, env, stdout=subprocess.PIPE)
    assert process.stdout is not None
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        line = process.stdout.readline()
    finally:
        timer.cancel()
        process.stdout.close()  # the server prints nothing after its address line
    if not line:
        stop(process)
        raise RuntimeError("the embedded MongoDB server did not start (see its log above)")
    uri: str = json.loads(line)["uri"]
    return process, uri


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def data_dir_args(env: dict[str, str], *, ephemeral: bool) -> list[str]:
    """`--data-dir` for the embedded MongoDB: EMBEDDED_DATA_DIR, else .data/mongo in the
    project; none for an ephemeral run."""
    if ephemeral:
        return []
    return ["--data-dir", env.get("EMBEDDED_DATA_DIR") or str(DEFAULT_DATA_DIR)]


def run_dev(settings: Settings, *, ephemeral: bool = False) -> int:
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        with _stop_on_signals():
            if settings.mongo_url is None:
                mongo_args = data_dir_args(env, ephemeral=ephemeral)
                # Loading a large data directory (or replaying a crash's journal) takes a while.
                wait = 600.0 if mongo_args else 30.0
                process, env["MONGO_URL"] = start_mongo(env, extra_args=mongo_args, timeout=wait)
                children.append(("mongodb", process))
                logger.info(
                    "embedded MongoDB-protocol server (development only): %s, data in %s",
                    env["MONGO_URL"],
                    mongo_args[-1] if mongo_args else "memory only (--ephemeral)",
                )
            if settings.redis_url is None:
                process, env["REDIS_URL"] = start_redis()
                children.append(("redis", process))
                logger.info("embedded Redis: %s", env["REDIS_URL"])
            logger.info(
                "MongoDB %s, Redis %s", redact_url(env["MONGO_URL"]), redact_url(env["REDIS_URL"])
            )
            migrated = subprocess.run(
                [sys.executable, "-m", "app", "migrate"], env=env, check=False
            )
            if migrated.returncode != 0:
                return migrated.returncode
            env["MIGRATE_ON_STARTUP"] = "false"
            children.append(("api", spawn(["-m", "app", "serve"], env)))
            children.append(("worker", spawn(["-m", "worker"], env)))
            logger.info(
                "API on http://%s:%d (Ctrl-C stops everything)", settings.host, settings.port
            )
            return _wait(children)
    except _Stop as stopped:
        logger.info("%s: stopping", stopped)
        return 0
    finally:
        for name, process in reversed(children):
            logger.info("stopping %s (pid %d)", name, process.pid)
            stop(process, timeout=settings.shutdown_grace + 5)


def _wait(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    """Block until a child exits; that ends the run."""
    while True:
        for name, process in children:
            code = process.poll()
            if code is not None:
                logger.error("%s exited with %d; stopping the rest", name, code)
                return code or 1
        with contextlib.suppress(subprocess.TimeoutExpired):
            children[-1][1].wait(0.5)
