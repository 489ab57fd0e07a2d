"""Eager start of a coroutine: its first step runs inline, and a task is made only if it suspends.

What Python 3.12's eager tasks do (``asyncio.Task(..., eager_start=True)``, used there), for 3.11.
A node body that finishes without awaiting anything pending (a no-op, ``time.delay`` 0, most
transforms written as ``async def``) then costs no Task, no scheduling and no turn of the event
loop; one that suspends carries on in an ordinary ``asyncio.Task``.

On 3.11 the body cannot run inside the Task that may continue it, as that Task does not exist
yet. So that ``asyncio.current_task()`` still names the body's own task (``asyncio.timeout``,
``asyncio.TaskGroup`` and aiohttp's client timeouts cancel whatever it names), a ``BodyTask``
stands in for it while the body runs, from the first step to the last: cancel requests made
during the first step are kept and handed to the Task when one is made, and later ones are
passed on to it. Being the current task for every step, not only the first, keeps its identity
the same across the body's awaits (a library that checks it left a scope in the task it entered
it in, as anyio's cancel scopes do, needs that).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["BodyTask", "start"]

# What ``start`` returns: the Task continuing a body that suspended, or else how the body ended:
# (None, its result, None), or (None, None, what it raised; a CancelledError if it was cancelled).
Started = tuple["asyncio.Task[Any] | None", Any, "BaseException | None"]

_enter_task: Callable[[asyncio.AbstractEventLoop, Any], None] = asyncio.tasks._enter_task
_leave_task: Callable[[asyncio.AbstractEventLoop, Any], None] = asyncio.tasks._leave_task
# The loop -> current task map that asyncio.current_task() reads; .get is one C call.
_current_task: Callable[[asyncio.AbstractEventLoop], Any] = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
_NOTHING: Any = object()  # no first yield left to hand over (None is a valid one: a bare yield)


class BodyTask:
    """What ``asyncio.current_task()`` returns inside a body started by ``start`` on Python 3.11:
    the body's task. Before the body suspends for the first time no Task exists, and this keeps
    what a Task would (cancel requests, done callbacks); afterwards every call goes to the Task.
    A body that finished in its first step is done: cancelling it changes nothing."""

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_cancel_message",
        "_cancel_requests",
        "_context",
        "_coro",
        "_error",
        "_finished",
        "_loop",
        "_must_cancel",
        "_result",
        "_task",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
        self._loop = loop
        self._coro = coro
        self._context = context
        self._task: asyncio.Task[Any] | None = None
        self._finished = False
        self._must_cancel = False
        self._cancel_requests = 0
        self._callbacks: list[tuple[Callable[[Any], object], contextvars.Context | None]] | None = None

    def __repr__(self) -> str:
        if self._task is not None:
            return repr(self._task)
        return f"<BodyTask {'finished' if self._finished else 'running'} coro={self._coro!r}>"

    def __getattr__(self, name: str) -> Any:
        # Called only for what is not defined here: whatever else a Task offers, once one exists.
        task = self._task
        if task is None:
            raise AttributeError(f"{name!r}: a node body's task is made only when the body first suspends")
        return getattr(task, name)

    # -- cancellation, as asyncio.Task ----------------------------------------------------

    def cancel(self, msg: Any = None) -> bool:
        if self._task is not None:
            return self._task.cancel(msg)
        if self._finished:
            return False
        # Requested while the first step runs: it takes effect when that step ends, as in a Task.
        self._cancel_requests += 1
        self._must_cancel = True
        self._cancel_message = msg
        return True

    def uncancel(self) -> int:
        if self._task is not None:
            return self._task.uncancel()
        if self._cancel_requests > 0:
            self._cancel_requests -= 1
        return self._cancel_requests

    def cancelling(self) -> int:
        if self._task is not None:
            return self._task.cancelling()
        return self._cancel_requests

    # -- state, as asyncio.Future ---------------------------------------------------------

    def done(self) -> bool:
        return self._task.done() if self._task is not None else self._finished

    def cancelled(self) -> bool:
        if self._task is not None:
            return self._task.cancelled()
        return self._finished and isinstance(self._error, asyncio.CancelledError)

    def result(self) -> Any:
        if self._task is not None:
            return self._task.result()
        if not self._finished:
            raise asyncio.InvalidStateError("Result is not set.")
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self) -> BaseException | None:
        if self._task is not None:
            return self._task.exception()
        if not self._finished:
            raise asyncio.InvalidStateError("Exception is not set.")
        if isinstance(self._error, asyncio.CancelledError):
            raise self._error
        return self._error

    def add_done_callback(self, fn: Callable[[Any], object], *, context: contextvars.Context | None = None) -> None:
        if self._task is not None:
            self._task.add_done_callback(fn, context=context)
        elif self._finished:
            self._loop.call_soon(fn, self, context=context)
        else:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        if self._task is not None:
            return self._task.remove_done_callback(fn)
        if not self._callbacks:
            return 0
        kept = [entry for entry in self._callbacks if entry[0] != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def get_coro(self) -> Coroutine[Any, Any, Any]:
        return self._coro

    def get_context(self) -> contextvars.Context:
        return self._context

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def get_name(self) -> str:
        return self._task.get_name() if self._task is not None else f"node body {getattr(self._coro, '__qualname__', self._coro)}"

    # -- the engine's side ----------------------------------------------------------------

    def _end(self, result: Any, error: BaseException | None) -> None:
        """The body finished in its first step."""
        self._finished = True
        self._result = result
        self._error = error
        if self._callbacks:
            for fn, context in self._callbacks:
                self._loop.call_soon(fn, self, context=context)
            self._callbacks = None

    def _hand_over(self, task: asyncio.Task[Any]) -> None:
        """The body suspended: from now on ``task`` runs it, and is what this stands for."""
        self._task = task
        if self._must_cancel:
            # Cancelled during the first step: the Task cancels what the body now awaits, as a
            # Task that had run that step would have, and counts the same requests.
            task.cancel(self._cancel_message)
            for _ in range(self._cancel_requests - 1):
                task.cancel(self._cancel_message)
            if self._cancel_requests == 0:
                task.uncancel()
        if self._callbacks:
            for fn, context in self._callbacks:
                task.add_done_callback(fn, context=context)
            self._callbacks = None


class _Continue(Coroutine[Any, Any, Any]):
    """The coroutine a Task steps to continue a body that suspended in its first step: its first
    step yields again the future the body awaits (after a bare yield it steps the body at once),
    and every step of the body runs with the body's ``BodyTask`` as the current task."""

    __slots__ = ("_body_task", "_coro", "_first", "_loop")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any, body_task: BodyTask) -> None:
        self._coro = coro
        self._first = first
        self._body_task: BodyTask | None = body_task
        self._loop = body_task._loop

    def __repr__(self) -> str:
        return f"<continuing {self._coro!r}>"

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            if first is not None:
                return first  # the future the body awaits: the Task now waits on it
            # A bare yield asked for one turn of the event loop, and this is the next turn.
        return self._step(self._coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        first = self._first
        if first is not _NOTHING:
            # Cancelled before the Task's first step: a Task that had run the body's first step
            # would be waiting on ``first`` and would cancel it; do the same, so that what the
            # body awaits (a gather, a shielded future) sees the cancellation as it would.
            self._first = _NOTHING
            if (
                isinstance(typ, asyncio.CancelledError)
                and getattr(first, "_asyncio_future_blocking", False)
                and first.cancel(msg=typ.args[0] if typ.args else None)
            ):
                return first
        if val is None and tb is None:
            return self._step(self._coro.throw, typ)
        return self._step(lambda _: self._coro.throw(typ, val, tb), None)

    def close(self) -> None:
        self._coro.close()

    # Only a Task steps it; awaiting it directly works too (``yield from`` passes send and throw).
    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def _step(self, step: Callable[[Any], Any], value: Any) -> Any:
        body_task = self._body_task
        if body_task is None:  # the body has ended: let it say so itself
            return step(value)
        loop = self._loop
        task = _current_task(loop)
        _leave_task(loop, task)
        _enter_task(loop, body_task)
        try:
            return step(value)
        except BaseException:
            self._body_task = None  # ended: no Task -> coroutine -> BodyTask -> Task cycle left
            raise
        finally:
            _leave_task(loop, body_task)
            _enter_task(loop, task)
            # An error's traceback keeps this frame: it must not hold the Task that holds the error.
            del task, body_task


def _start_311(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Started:
    context = contextvars.copy_context()
    body_task = BodyTask(loop, coro, context)
    caller = _current_task(loop)  # the request handler's task, or None in a callback
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, body_task)
    try:
        yielded = context.run(coro.send, None)
    except StopIteration as stop:
        if body_task._must_cancel:  # it cancelled itself and returned: a Task would be cancelled
            error: BaseException = asyncio.CancelledError(body_task._cancel_message)
            body_task._end(None, error)
            return None, None, error
        body_task._end(stop.value, None)
        return None, stop.value, None
    except (KeyboardInterrupt, SystemExit) as exc:
        body_task._end(None, exc)
        raise
    except BaseException as exc:
        # The traceback starts at the body, not in this frame: this frame holds body_task, which
        # holds the error, and a cycle would keep both until the garbage collector ran.
        exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        body_task._end(None, exc)
        return None, None, exc
    finally:
        _leave_task(loop, body_task)
        if caller is not None:
            _enter_task(loop, caller)
    task = loop.create_task(_Continue(coro, yielded, body_task), context=context)
    body_task._hand_over(task)
    return task, None, None


def _start_312(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Started:
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    if not task.done():
        return task, None, None
    if task.cancelled():
        try:
            task.result()
        except asyncio.CancelledError as cancelled:
            return None, None, cancelled
    error = task.exception()
    return (None, None, error) if error is not None else (None, task.result(), None)


# start(loop, coro): run ``coro``'s first step now, in a copy of the current context, as its own
# task would. If it suspended, the ``asyncio.Task`` that carries on with it (in that context)
# is returned; if it ended, nothing was scheduled and how it ended is returned instead.
start: Callable[[asyncio.AbstractEventLoop, Coroutine[Any, Any, Any]], Started] = (
    _start_312 if sys.version_info >= (3, 12) else _start_311
)
