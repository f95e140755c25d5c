"""SIGHUP, on purpose: logged and ignored by every process that serves requests.

SIGHUP's default action is to end the process, at once, without a word:
in-flight requests get empty replies. Terminals, SSH sessions and some
process managers send it when they go away, and mnist-serve has nothing to
reload in place (a model repository with live reload is a separate feature),
so a process that serves requests logs it and carries on.

With several workers (``--workers N``), uvicorn's supervisor, the parent
process, handles SIGHUP itself: it replaces the workers one by one, each new
one serving (weights loaded and self-tested) before the old one is stopped
with SIGTERM and drains its requests. A replacement that fails to start
(e.g. the weights file was replaced by a bad one) is dropped and the old
worker keeps serving. The workers ignore SIGHUP, so a SIGHUP sent to the
whole process group restarts them gracefully rather than killing them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

logger = logging.getLogger("mnist_serve")


def _ignored(role: str) -> None:
    logger.warning(
        "SIGHUP received by the %s: ignored (send SIGTERM to stop; with "
        "several workers, SIGHUP to the parent replaces them one by one)",
        role,
    )


def ignore_sighup_in_process() -> None:
    """From ``mnist-serve``'s main thread, before uvicorn starts: log and ignore SIGHUP."""
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda signum, frame: _ignored("server"))


def ignore_sighup_in_worker() -> None:
    """From a worker's lifespan: log and ignore SIGHUP (main thread only).

    Worker processes start from a fresh interpreter with SIGHUP's default
    action; an app run in a thread (tests) has no signals to handle.
    """
    if not hasattr(signal, "SIGHUP"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None):
        return  # one worker: mnist-serve's own process has it in hand
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _ignored, "worker")
