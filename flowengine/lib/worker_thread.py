"""One thread that runs blocking calls for the event loop, one at a time, in the order given.

The SQLite store does all its work on such a thread. ``loop.run_in_executor`` with a one-thread
``ThreadPoolExecutor`` does the same, but each call takes two executor locks and an idle
semaphore that the worker thread takes too, and chains a concurrent Future to an asyncio one:
under load the event loop's thread was seen waiting on those locks while the worker thread
waited for the GIL. Here a call is one ``SimpleQueue.put`` (no lock the worker holds) and its
result comes back with one ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerThread"]

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled meanwhile: nobody wants the outcome
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkerThread:
    """Runs ``call``'s functions on one daemon thread; ``stop`` ends it after the calls queued."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, function, args = job
            try:
                result, error = function(*args), None
            except BaseException as exc:  # handed to the caller, whatever it is
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                pass
            del job, future, result, error  # drop references before waiting for the next job

    def call(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``function(*args)`` on the thread; the future has its result or its exception.
        Cancelling the future does not stop a call that has started."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return future

    def stop(self) -> None:
        """Finish the calls queued so far, then end the thread (waits for it)."""
        self._jobs.put(None)
        self._thread.join()
