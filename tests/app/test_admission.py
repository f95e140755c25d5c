"""The memory budget's rules, and streamed answers equal to whole ones."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from app.admission import Budget, Ticket, run_heavy, set_work_threads
from app.exceptions import BusyError, OverBudgetError
from app.responses import ORJSONResponse, estimate, pieces


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_charges_add_up_and_are_released_together() -> None:
    async def scenario() -> None:
        budget = Budget(100, slots=2)
        ticket = Ticket(budget)
        await ticket.charge_body(30)
        await ticket.charge(50, "work")
        assert (budget.used, budget.working) == (80, 1)
        await ticket.charge(10, "more work")  # the same request: no second slot
        assert budget.working == 1
        ticket.release()
        assert (budget.used, budget.working) == (0, 0)
        assert budget.peak == 90

    run(scenario())


def test_a_request_larger_than_the_whole_budget_is_413_not_503() -> None:
    async def scenario() -> None:
        ticket = Ticket(Budget(100, slots=2, queue_timeout=5))
        with pytest.raises(OverBudgetError, match="whole memory budget"):
            await ticket.charge(101, "decoding")

    run(scenario())


def test_waiting_requests_are_served_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        budget = Budget(100, slots=10, queue_timeout=5)
        holder = Ticket(budget)
        await holder.charge(90, "first")
        order: list[str] = []

        async def request(name: str, nbytes: int) -> None:
            ticket = Ticket(budget)
            await ticket.charge(nbytes, name)
            order.append(name)
            await asyncio.sleep(0.01)
            ticket.release()

        # "big" arrived first and needs 80: "small" (5) would fit now, but
        # waits behind it, or a stream of small ones could starve big ones.
        tasks = [asyncio.create_task(request("big", 80))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(request("small", 5)))
        await asyncio.sleep(0.01)
        assert order == []
        holder.release()
        await asyncio.gather(*tasks)
        return order

    assert run(scenario()) == ["big", "small"]


def test_no_room_within_the_queue_timeout_is_503_and_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        budget = Budget(100, slots=1, queue_timeout=0.05)
        first = Ticket(budget)
        await first.charge(10, "work")
        with pytest.raises(BusyError, match="1 requests are being worked on"):
            await Ticket(budget).charge(10, "work")  # no slot
        with pytest.raises(BusyError, match="memory budget is in use"):
            await Ticket(budget).charge_body(95)  # bodies take no slot, but bytes
        first.release()
        assert (budget.used, budget.working) == (0, 0)
        assert not budget._waiters
        await Ticket(budget).charge(100, "all of it")

    run(scenario())


def test_a_cancelled_waiter_gives_back_what_it_was_granted() -> None:
    async def scenario() -> None:
        budget = Budget(100, slots=5, queue_timeout=5)
        holder = Ticket(budget)
        await holder.charge(100, "all")
        waiting = asyncio.create_task(Ticket(budget).charge(50, "waits"))
        await asyncio.sleep(0.01)
        holder.release()  # grants the waiter...
        waiting.cancel()  # ...whose request is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (budget.used, budget.working) == (0, 0)

    run(scenario())


def test_heavy_jobs_run_at_most_work_threads_at_once() -> None:
    import threading
    import time

    active, peak = 0, 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    async def scenario() -> None:
        await asyncio.gather(*(run_heavy(job) for _ in range(8)))

    set_work_threads(3)
    try:
        run(scenario())
    finally:
        set_work_threads(2)
    assert peak == 3


CONTENTS = [
    {"x": np.linspace(-5, 5, 100_000), "y": np.zeros(100_000), "name": "relu"},
    {
        "labels": np.arange(4096) % 10,
        "probabilities": np.full((4096, 10), 0.1, np.float32),
        "input": np.random.default_rng(0).random((4096, 28, 28), dtype=np.float32),
    },
    {"hidden": [np.ones(50, np.float32), np.ones(100, np.float32)], "label": 3},
    np.arange(70_000, dtype=np.int64),
    np.zeros((1, 200_000), np.float32),
]


@pytest.mark.parametrize("content", CONTENTS)
def test_streamed_pieces_are_the_whole_json_byte_for_byte(content: object) -> None:
    whole = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    assert b"".join(pieces(content)) == whole
    assert estimate(content) >= len(whole)


def test_small_answers_have_a_length_and_big_ones_stream() -> None:
    small = ORJSONResponse({"label": 1, "probabilities": np.zeros(10, np.float32)})
    assert small.headers["content-length"] == str(len(small.body))
    big = ORJSONResponse(CONTENTS[0])
    assert "content-length" not in big.headers


def test_all_of_a_requests_waits_together_last_at_most_the_queue_timeout() -> None:
    async def scenario() -> float:
        budget = Budget(100, slots=5, queue_timeout=0.2)
        holder = Ticket(budget)
        await holder.charge(100, "all")
        ticket = Ticket(budget)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5):  # five body chunks, each finding no room
            with pytest.raises(BusyError):
                await ticket.charge_body(10)
        return loop.time() - start

    assert run(scenario()) < 0.4  # not 5 x 0.2 s


def test_a_reserve_is_in_use_from_the_start_and_left_out_of_every_request() -> None:
    async def scenario() -> None:
        budget = Budget(100, slots=2, queue_timeout=0.05, reserved=30)
        assert (budget.used, budget.peak) == (30, 30)
        ticket = Ticket(budget)
        await ticket.charge(70, "decoding")  # exactly what the reserve leaves
        ticket.release()
        assert budget.used == 30  # the reserve is never given back
        with pytest.raises(
            OverBudgetError, match="that the worker's whole memory budget"
        ):
            await Ticket(budget).charge(71, "decoding")

    run(scenario())


def test_the_reserve_is_named_in_the_413() -> None:
    async def scenario() -> None:
        mib = 1024 * 1024
        budget = Budget(256 * mib, slots=2, reserved=8 * mib)
        with pytest.raises(OverBudgetError) as caught:
            await Ticket(budget).charge(250 * mib, "decoding the body")
        assert caught.value.args[0] == (
            "decoding the body needs about 250.0 MiB, more than the 248.0 MiB that "
            "the worker's whole memory budget of 256.0 MiB leaves for requests; "
            "send less at once"
        )

    run(scenario())
