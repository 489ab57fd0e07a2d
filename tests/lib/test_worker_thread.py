"""The store's worker thread: calls run on one other thread, in order; results and exceptions
reach the caller; a cancelled caller does not break the thread; stop finishes what was queued."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flowengine.lib.worker_thread import WorkerThread


async def test_calls_run_in_order_on_one_other_thread():
    worker = WorkerThread("test-worker")
    seen: list[tuple[int, str]] = []

    def record(number: int) -> int:
        seen.append((number, threading.current_thread().name))
        return number * 2

    try:
        results = await asyncio.gather(*(worker.call(record, number) for number in range(50)))
    finally:
        worker.stop()
    assert results == [number * 2 for number in range(50)]
    assert [number for number, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-worker"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on():
    worker = WorkerThread("test-worker")

    def fail() -> None:
        raise ValueError("bad statement")

    try:
        with pytest.raises(ValueError, match="bad statement"):
            await worker.call(fail)
        assert await worker.call(lambda: "still here") == "still here"
    finally:
        worker.stop()


async def test_a_cancelled_caller_leaves_the_call_running_and_the_thread_usable():
    worker = WorkerThread("test-worker")
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.1)
        finished.set()
        return "done"

    try:
        waiting = asyncio.ensure_future(worker.call(slow))
        await asyncio.sleep(0.01)
        waiting.cancel()
        assert await worker.call(lambda: 1) == 1  # queued after the slow call: runs after it
        assert finished.is_set()
    finally:
        worker.stop()


async def test_stop_finishes_the_calls_queued_before_it():
    worker = WorkerThread("test-worker")
    done: list[int] = []
    futures = [worker.call(done.append, number) for number in range(5)]
    worker.stop()
    assert done == [0, 1, 2, 3, 4]
    await asyncio.gather(*futures)
