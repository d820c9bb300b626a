"""`./dev serve`: the API and a worker, on embedded MongoDB and Redis where none is configured.

Each embedded server runs in its own process, so the emulator's work never blocks the API's
event loop. The API and the worker are restarted when they exit (embedded/supervise.py); an
embedded server that exits ends the run. Ctrl-C or SIGTERM stops every process this started,
newest first.
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
from types import FrameType

from app.settings import AuthMode, Settings, redact_url
from embedded.redis import start_redis, stop
from embedded.supervise import Supervisor

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


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


class _Stop(BaseException):
    """Raised by the signal handler; a BaseException so that no `except Exception` (logging's
    own, around every log line) swallows it."""


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


def run_dev(settings: Settings) -> int:
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    supervisor = Supervisor()  # the API and the worker: restarted when they exit
    try:
        with _stop_on_signals():
            if settings.mongo_url is None:
                process, env["MONGO_URL"] = start_mongo(env)
                children.append(("mongodb", process))
                logger.info(
                    "embedded MongoDB-protocol server (development only): %s", env["MONGO_URL"]
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
            _choose_auth(settings, env)
            supervisor.start("api", lambda: spawn(["-m", "app", "serve"], env))
            supervisor.start("worker", lambda: spawn(["-m", "worker"], env))
            logger.info(
                "API on http://%s:%d (Ctrl-C stops everything)", settings.host, settings.port
            )
            return _wait(children, supervisor)
    except _Stop as stopped:
        logger.info("%s: stopping", stopped)
        return 0
    finally:
        supervisor.stop(timeout=settings.shutdown_grace + 5)
        for name, process in reversed(children):
            logger.info("stopping %s (pid %d)", name, process.pid)
            stop(process, timeout=settings.shutdown_grace + 5)


def _choose_auth(settings: Settings, env: dict[str, str]) -> None:
    """The dev run checks tokens only when a key is given; it says which way it went."""
    keyed = settings.auth_jwt_secret is not None or settings.auth_jwt_public_key is not None
    if settings.auth_mode is AuthMode.OFF or not keyed:
        env["AUTH_MODE"] = "off"
        logger.warning(
            "auth is off: every client reads and writes every session (set AUTH_JWT_SECRET,"
            " at least 32 bytes, to require tokens)"
        )
        return
    env["AUTH_MODE"] = "jwt"
    logger.info(
        "auth is on (AUTH_MODE=jwt): send a token, e.g. from"
        ' ./dev app token --sub me --scope "events:read events:write runs:write" --sessions "*"'
    )


def _wait(children: list[tuple[str, subprocess.Popen[bytes]]], supervisor: Supervisor) -> int:
    """Block until an embedded server exits, which ends the run; restart the API and the
    worker whenever they exit."""
    while True:
        for name, process in children:
            code = process.poll()
            if code is not None:
                logger.error("%s exited with %d; stopping the rest", name, code)
                return code or 1
        supervisor.poll()
        supervisor.wait(0.5)
