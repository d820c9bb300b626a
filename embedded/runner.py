"""`./dev serve`: the API and a worker, on embedded MongoDB and Redis where none is configured.

Each embedded server runs in its own process, so the emulator's work never blocks the API's
event loop, and in its own session, so the terminal's Ctrl-C reaches only the API, the worker
and this runner: the databases stay up while those two shut down, and stop last. The API and
the worker are restarted when they exit (embedded/supervise.py); an embedded server that exits
ends the run. Ctrl-C or SIGTERM stops every process this started, newest first; a second one
kills them at once.
While it runs, `.dev-run.json` tells the other commands where the embedded servers are
(app.devrun).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from app.devrun import remove_state, write_state
from app.settings import AuthMode, Settings, redact_url
from embedded.redis import start_redis, stop
from embedded.supervise import Supervisor

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
    env: dict[str, str],
    *,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    own_session: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """The embedded MongoDB-protocol server (a replica set with change streams by default).

    `own_session`: out of the terminal's process group, so its Ctrl-C does not reach it.
    """
    args = ["-m", "embedded.mongo", "--port", "0", *extra_args]
    process = spawn(args, env, stdout=subprocess.PIPE, start_new_session=own_session)
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
def _on_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Signals:
    """SIGINT/SIGTERM: the first one stops the run; any later one kills every child at once.

    One handler for the whole run, so a quick second Ctrl-C never finds Python's default
    handler (a KeyboardInterrupt that would leave the embedded servers behind).
    """

    def __init__(self, processes: Callable[[], list[subprocess.Popen[bytes]]]) -> None:
        self.processes = processes
        self.stopping = False
        self.forced = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.stopping:
            self.stopping = True
            raise _Stop(name)
        if not self.forced:
            self.forced = True
            logger.warning("%s again: killing everything now", name)
        for process in self.processes():
            with contextlib.suppress(OSError):
                process.kill()


def data_dir_args(env: dict[str, str], *, ephemeral: bool) -> list[str]:
    """`--data-dir` for the embedded MongoDB: EMBEDDED_DATA_DIR, else .data/mongo in the
    project; none for an ephemeral run."""
    if ephemeral:
        return []
    return ["--data-dir", env.get("EMBEDDED_DATA_DIR") or str(DEFAULT_DATA_DIR)]


def run_dev(settings: Settings, *, ephemeral: bool = False) -> int:
    from worker.agents import Registry

    problems = Registry.from_settings(settings).problems()
    for problem in problems:  # before anything starts: one line each, as the worker would
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    servers: list[tuple[str, subprocess.Popen[bytes]]] = []  # the embedded databases
    supervisor = Supervisor()  # the API and the worker: restarted when they exit
    signals = _Signals(lambda: [c.process for c in supervisor.children] + [p for _, p in servers])
    code = 0
    with _on_signals(signals):
        try:
            code = _run(settings, servers, supervisor, ephemeral=ephemeral)
        except _Stop as stopped:
            logger.info("%s: stopping (again to kill everything at once)", stopped)
        finally:
            signals.stopping = True
            remove_state()
            grace = settings.shutdown_grace + 5
            supervisor.stop(timeout=grace)
            _stop_all(servers, grace)
    return 130 if signals.forced else code


def _run(
    settings: Settings,
    servers: list[tuple[str, subprocess.Popen[bytes]]],
    supervisor: Supervisor,
    *,
    ephemeral: bool,
) -> int:
    env = dict(os.environ)
    embedded: dict[str, str] = {}
    if settings.mongo_url is None:
        mongo_args = data_dir_args(env, ephemeral=ephemeral)
        # Loading a large data directory (or replaying a crash's journal) takes a while.
        wait = 600.0 if mongo_args else 30.0
        process, env["MONGO_URL"] = start_mongo(
            env, extra_args=mongo_args, timeout=wait, own_session=True
        )
        servers.append(("mongodb", process))
        embedded["MONGO_URL"] = env["MONGO_URL"]
        logger.info(
            "embedded MongoDB-protocol server (development only): %s, data in %s",
            env["MONGO_URL"],
            mongo_args[-1] if mongo_args else "memory only (--ephemeral)",
        )
    if settings.redis_url is None:
        process, env["REDIS_URL"] = start_redis(own_session=True)
        servers.append(("redis", process))
        embedded["REDIS_URL"] = env["REDIS_URL"]
        logger.info("embedded Redis: %s", env["REDIS_URL"])
    logger.info("MongoDB %s, Redis %s", redact_url(env["MONGO_URL"]), redact_url(env["REDIS_URL"]))
    if embedded:
        path = write_state(embedded)
        logger.info("`./dev app ...` and `./dev worker ...` find them through %s", path)
    migrated = subprocess.run([sys.executable, "-m", "app", "migrate"], env=env, check=False)
    if migrated.returncode != 0:
        return migrated.returncode
    env["MIGRATE_ON_STARTUP"] = "false"
    _choose_auth(settings, env)
    api = supervisor.start("api", lambda: spawn(["-m", "app", "serve"], env))
    supervisor.start("worker", lambda: spawn(["-m", "worker"], env))
    if _listening(api.process, settings.host, settings.port):
        logger.info("API on http://%s:%d (Ctrl-C stops everything)", settings.host, settings.port)
    return _wait(servers, supervisor)


def _listening(process: subprocess.Popen[bytes], host: str, port: int) -> bool:
    """Wait until the API accepts connections (uvicorn binds after its start-up), or exits."""
    address = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    while process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5):
            return True
        time.sleep(0.1)
    return False


def _stop_all(children: list[tuple[str, subprocess.Popen[bytes]]], grace: float) -> None:
    """Stop the children newest first, so the databases stop last."""
    for name, process in reversed(children):
        if process.poll() is None:
            logger.info("stopping %s (pid %d)", name, process.pid)
        stop(process, timeout=grace)


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


def _wait(servers: list[tuple[str, subprocess.Popen[bytes]]], supervisor: Supervisor) -> int:
    """Block until an embedded server exits, which ends the run; restart the API and the
    worker whenever they exit."""
    while True:
        for name, process in servers:
            code = process.poll()
            if code is not None:
                logger.error("%s exited with %d; stopping the rest", name, code)
                return code or 1
        supervisor.poll()
        supervisor.wait(0.5)
