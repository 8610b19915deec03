"""Running the app under uvicorn, with a graceful stop. On SIGTERM (an orchestrator stopping
the server) or Ctrl-C, uvicorn stops accepting connections, lets the requests in flight finish
for up to TALLY_SHUTDOWN_GRACE_SECONDS, runs the app's shutdown (which drains the query pool)
and the process exits 0: a requested stop is not a failure."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from tally.api.slow_clients import header_timeout_protocol
from tally.settings import Settings

STARTUP_FAILURE = 3  # as uvicorn's own runner: the server never started (e.g. port taken)


def serve(app: FastAPI, settings: Settings, log_level: str = "info") -> int:
    """Serve `app` on settings.host:settings.port until stopped; the process's exit code."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        timeout_keep_alive=5,
        limit_concurrency=settings.max_connections,
    )
    _raise_descriptor_limit(settings.max_connections)
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM while it serves, and after its graceful shutdown re-raises the
    # signal to the handler that was there before it: this one, which ends the process with 0
    # (as it does for a SIGTERM that comes before uvicorn listens).
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else STARTUP_FAILURE


def _raise_descriptor_limit(connections: int) -> None:
    """Room for the connections served at once and everything else the server opens (the
    warehouse, Redis, log files): the soft limit up to the hard one, which the system sets."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = connections * 2 + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX, or not allowed: the system's limit stands


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
