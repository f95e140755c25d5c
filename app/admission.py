"""Admission: a worker's memory budget and its work slots.

Every byte a request makes the worker hold is charged, before it is held,
to one per-worker :class:`Budget`:

* body bytes as they arrive (the guard's ``receive``), twice over, since the
  chunks and their join live side by side for a moment;
* the decoding of a body, estimated from its size and media type
  (:mod:`app.codecs`), before it is parsed;
* the answer rows of /v2 and gRPC (their outputs are rendered whole). Other
  answers are either small (at most :data:`app.responses.STREAM_ABOVE`
  rendered at once) or streamed in pieces from the arrays the request was
  already charged for.

A request that does not fit in what is left waits its turn for a few
seconds, then gets 503 with ``Retry-After``; one that could never fit, even
alone, gets 413. Charges are released when the
request's answer has been handed to the connection. So the worker's peak
resident memory is its idle size plus at most the budget, plus what uvicorn
holds per open connection (bounded by the connection cap and h11's buffer
limit): the figures are measured and stated in the README.

Work slots cap how many requests decode, compute or answer at once: a request
takes one with its first work charge. A work charge that does not fit waits
in turn, up to ``queue_timeout``. Reading a body takes no slot, and
routes that charge nothing (health, metrics, the page) never wait for one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.exceptions import BusyError, OverBudgetError

MiB = 1024 * 1024
T = TypeVar("T")

# Resident bytes per byte of body, point or pixel, measured with
# ``python -m bench.hostile costs`` (each request alone on a fresh worker,
# peak RSS growth; worst case of each kind, rounded up). JSON: orjson builds
# Python objects, ~15 bytes per body byte for numbers (128 MiB for an 8 MiB
# body) and up to ~24 for a body of empty objects, then NumPy copies.
JSON_BYTES_PER_BODY_BYTE = 28
# uint8 pixels become float32 (x4), scaled in a second array (x4); the
# forward pass's activations are a fraction of that.
OCTET_BYTES_PER_BODY_BYTE = 10
# Little-endian float32 tensors: the values checked and copied (x1-2).
BINARY_BYTES_PER_BODY_BYTE = 4
# A decoded image: Pillow's bands, a converted copy, float32 work arrays
# (8-9 bytes a pixel measured for 8-bit modes, 12 for 16-bit gray).
IMAGE_BYTES_PER_PIXEL = 10
IMAGE_BYTES_PER_PIXEL_WIDE = 13  # modes I;16, I, F
# Then core.images' pipeline (paper, ink, fit, strokes) works on the image
# reduced to at most 2 megapixels, in float arrays: ~37.5 MiB per megapixel
# of working size plus up to ~4 MiB more (0.09 to 2 Mpx, PNG, JPEG, /predict
# and /explain alike: 7.1 to 79 MiB, 79 bytes a pixel at the small end), which
# the decoding constant above left out (a 2-megapixel PNG was charged 19 MiB
# and took 79). Charged: 44 bytes a working pixel, and as much again up to
# IMAGE_WORK_BYTES, so that a 28x28 digit still costs next to nothing.
IMAGE_WORK_BYTES_PER_PIXEL = 44
IMAGE_WORK_BYTES = 4 * MiB
# /activations: x, y and dy in float64 and the temporaries of the function.
ACTIVATION_BYTES_PER_POINT = 100


class Budget:
    """A worker's memory budget (bytes) and work slots, shared by its requests.

    Requests that do not fit wait in arrival order (so a large request is not
    starved by a stream of small ones), for at most ``queue_timeout``
    seconds; then 503. Used from the event loop only.

    Parameters
    ----------
    capacity : int
        Bytes that requests may hold at once.
    slots : int
        Requests that may be doing work (decoding, computing, answering) at once.
    queue_timeout : float
        Seconds a request may wait for memory or a slot.
    reserved : int
        Bytes of the capacity the worker holds for as long as it runs, outside
        any request (the JSON parser's kept buffers): in use from the start.
    """

    def __init__(
        self, capacity: int, slots: int, queue_timeout: float = 5.0, reserved: int = 0
    ) -> None:
        self.capacity = capacity
        self.slots = slots
        self.queue_timeout = queue_timeout
        self.reserved = reserved
        self.used = reserved
        self.working = 0
        self.peak = reserved
        self._waiters: deque[tuple[int, bool, asyncio.Future[None]]] = deque()

    def _fits(self, nbytes: int, slot: bool) -> bool:
        return self.used + nbytes <= self.capacity and not (
            slot and self.working >= self.slots
        )

    def _take(self, nbytes: int, slot: bool) -> None:
        self.used += nbytes
        self.peak = max(self.peak, self.used)
        if slot:
            self.working += 1

    async def take(self, nbytes: int, slot: bool, timeout: float | None = None) -> bool:
        """Take ``nbytes`` (and a slot), waiting in turn; False after ``timeout``.

        ``timeout`` defaults to ``queue_timeout``.
        """
        if not self._waiters and self._fits(nbytes, slot):
            self._take(nbytes, slot)
            return True
        timeout = self.queue_timeout if timeout is None else timeout
        if timeout <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        entry = (nbytes, slot, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait([waiter], timeout=timeout)
        except BaseException:
            self._abandon(entry)
            raise
        if waiter.done() and not waiter.cancelled():
            return True
        self._abandon(entry)
        return False

    def _abandon(self, entry: tuple[int, bool, asyncio.Future[None]]) -> None:
        nbytes, slot, waiter = entry
        if waiter.done() and not waiter.cancelled():
            self.give(nbytes, slot)  # granted just as its request gave up
            return
        waiter.cancel()
        if entry in self._waiters:
            self._waiters.remove(entry)
        self._wake()

    def give(self, nbytes: int, slot: bool) -> None:
        self.used -= nbytes
        if slot:
            self.working -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, slot, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if not self._fits(nbytes, slot):
                return
            self._waiters.popleft()
            self._take(nbytes, slot)
            waiter.set_result(None)

    def _busy(self, slot: bool) -> str:
        if slot and self.working >= self.slots:
            return f"{self.slots} requests are being worked on"
        return f"{_mib(self.used)} of its {_mib(self.capacity)} memory budget is in use"


class Ticket:
    """One request's charges against a :class:`Budget`; released all at once.

    All of a request's waits together last at most the budget's
    ``queue_timeout``.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.held = 0
        self.working = False
        self.waited = 0.0

    async def _take(self, nbytes: int, slot: bool) -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            return await self.budget.take(
                nbytes, slot, self.budget.queue_timeout - self.waited
            )
        finally:
            self.waited += loop.time() - start

    async def charge_body(self, nbytes: int) -> None:
        """Charge body bytes as they arrive (no work slot).

        When the budget is full, the body is not read further until there is
        room (the client's sending pauses), in turn with the other requests.

        Raises
        ------
        BusyError
            Still no room after the budget's ``queue_timeout``.
        """
        self._check(nbytes, "the request body")
        if not await self._take(nbytes, False):
            raise BusyError(f"server busy: {self.budget._busy(False)}; retry shortly")
        self.held += nbytes

    async def charge(self, nbytes: int, what: str) -> None:
        """Charge ``nbytes`` of work on ``what``; the first charge takes a slot.

        Waits in turn (at most the budget's ``queue_timeout``) when the budget
        or the slots are in use.

        Raises
        ------
        OverBudgetError
            ``nbytes`` is more than the whole budget: it can never be served.
        BusyError
            Still no room after the wait.
        """
        nbytes = max(0, int(nbytes))
        self._check(nbytes, what)
        slot = not self.working
        if not await self._take(nbytes, slot):
            raise BusyError(f"server busy: {self.budget._busy(slot)}; retry shortly")
        self.held += nbytes
        self.working = self.working or slot

    def _check(self, nbytes: int, what: str) -> None:
        budget = self.budget
        if self.held + nbytes > budget.capacity - budget.reserved:
            raise OverBudgetError(
                f"{what} needs about {_mib(self.held + nbytes)}, more than the "
                f"{_mib(budget.capacity - budget.reserved)} that the worker's whole "
                f"memory budget of {_mib(budget.capacity)} leaves for requests; "
                "send less at once"
            )

    def release(self) -> None:
        """Give back everything this request holds."""
        if self.held or self.working:
            self.budget.give(self.held, self.working)
        self.held = 0
        self.working = False


def ticket_of(scope: Any) -> Ticket | None:
    """The request's ticket (set by the guard), or None outside the guard."""
    state = scope.get("state") if isinstance(scope, dict) else None
    ticket = state.get("ticket") if isinstance(state, dict) else None
    return ticket if isinstance(ticket, Ticket) else None


async def charge(scope: Any, nbytes: int, what: str) -> None:
    """Charge ``nbytes`` of work on ``what`` to the request (nothing outside the guard)."""
    ticket = ticket_of(scope)
    if ticket is not None:
        await ticket.charge(nbytes, what)


# Heavy work (parsing megabytes, decoding images, big forward passes) runs in
# threads, but only this many at once: on two cores more threads only fight
# the event loop for the GIL, and the probes' latency is the event loop's.
_threads = 2
_pool: ThreadPoolExecutor | None = None


def set_work_threads(count: int) -> None:
    """How many heavy jobs may run in threads at once (``work_threads``)."""
    global _threads, _pool
    if count != _threads and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    _threads = count


async def run_heavy(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, at most ``work_threads`` at once."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads, thread_name_prefix="mnist-serve-work")
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


# glibc's malloc, left alone, keeps freed memory: one arena per thread (up to
# 8 per core), and after a large block is freed it raises its mmap threshold
# to that size (up to 32 MiB), so later multi-megabyte arrays come from the
# heap and stay resident when freed. Under the worst valid mix that took one
# worker from 127 to 863 MiB while the budget held 256. Two arenas and a fixed
# threshold return large blocks to the system when they are freed. 1 MiB, not
# lower: at 256 KiB a 100-image batch's arrays (314 KB each) are mapped and
# unmapped per request, and Batch.from_bytes took 130 us instead of 84; the
# worst mix's peak moved from 295 to 301 MiB (python -m bench.hostile).
# Fixing the mmap threshold also fixes the trim threshold, at 128 KiB: the
# heap's free top above that is returned to the system after every free, so a
# JSON batch of 100 (a 600 KB body, then a 627 KB float64 and 314 KB float32
# arrays) grew the heap and took ~120 fresh pages per request from the kernel
# (simdjson + as_buffer: 0.87 ms instead of 0.67). At 4 MiB per arena the
# free top is kept across requests (page faults per request, 4 connections:
# 760 before, 34-82 at 2 MiB, 0 at 4 MiB); that slack is part of the bound.
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 1024 * 1024
MALLOC_TRIM_THRESHOLD = 4 * 1024 * 1024
ALLOCATOR_SLACK = MALLOC_ARENAS * MALLOC_TRIM_THRESHOLD  # free memory glibc may keep
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> bool:
    """Make glibc return freed memory (this process, and children via the environment).

    Returns False where there is no glibc (nothing to do).
    """
    import ctypes
    import ctypes.util
    import os

    # Workers are new processes: glibc reads these when they start.
    settings = {
        "MALLOC_ARENA_MAX": (_M_ARENA_MAX, MALLOC_ARENAS),
        "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD),
    }
    for name, (_, value) in settings.items():
        os.environ.setdefault(name, str(value))
    library = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(library or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = True
    for name, (option, _) in settings.items():  # each one, even after a refusal
        applied = bool(mallopt(option, int(os.environ[name]))) and applied
    return applied


def _mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f} MiB"
