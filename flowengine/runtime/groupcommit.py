"""The history writer both stores share: writes queued without waiting, committed in batches.

Executions queue their rows (``queue``) and go on; one writer task commits whatever has been
queued (``commit_batch``, the store's own), so concurrent requests share a commit. Writes
nobody waits for are paced: at most one commit per ``COMMIT_INTERVAL`` while they are all there
is, which keeps the writer's fixed cost per commit off busy servers and lets an execution that
finishes within the pause write one complete row instead of an INSERT and an UPDATE
(``replace_start``). A caller about to acknowledge something to a client waits for the commit
that carries it (``committed``), which cuts any pause short; a read flushes first (``flush``).
History not yet committed is bounded by ``queue_bytes`` (``wait_for_room``).

A store whose database may be unreachable for a while raises ``RetryLater`` from its
``commit_batch``: the batch goes back to the front of the queue, whoever waited for it hears of
the outage at once, and the writer tries again after the delay (or when ``resume`` is called).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..errors import StoreError

__all__ = ["COMMIT_INTERVAL", "GroupCommit", "RetryLater"]

# Writes nobody waits for (all of them with FLOWENGINE_HISTORY_ACK=async) are committed within
# this many seconds. It bounds how much history a crash of the process (not of the machine) can
# lose in that mode.
COMMIT_INTERVAL = 0.02

W = TypeVar("W")


class RetryLater(Exception):
    """Raised by ``commit_batch`` when the database cannot be reached: keep the batch, tell its
    waiters ``error``, try again after ``delay`` seconds."""

    def __init__(self, error: StoreError, delay: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class GroupCommit(Generic[W]):
    """Queued writes of type ``W``, committed in batches by ``commit_batch`` (which returns
    None, or the StoreError that kept part of the batch from being written)."""

    def __init__(self, commit_batch: Callable[[list[W]], Awaitable[StoreError | None]], queue_bytes: int) -> None:
        self._commit_batch = commit_batch
        self.queue_bytes = queue_bytes  # history not yet committed, beyond which new work waits
        self.pending: list[W] = []
        self._pending_bytes = 0
        self._uncommitted_bytes = 0  # queued plus being committed
        # Callers waiting for the queued batch, and for the batch being written: resolved with
        # None, or the StoreError, once it is committed.
        self._pending_waiters: list[asyncio.Future[StoreError | None]] = []
        self._writing_waiters: list[asyncio.Future[StoreError | None]] = []
        self._room: asyncio.Future[None] | None = None  # resolved after each commit, for waiters
        self._starts: dict[str, int] = {}  # execution id -> its start row's place in ``pending``
        self._flush: asyncio.Future[None] | None = None
        self._hurry: asyncio.Future[None] | None = None  # ends the pause between two commits
        self._urgent = False  # someone waits in flush(): commit without pauses

    # -- queueing ----------------------------------------------------------------------------

    def queue(self, write: W, size: int, *, start_of: str | None = None) -> None:
        """Queue a write of about ``size`` bytes; ``start_of`` names the execution whose start
        row it is (see ``replace_start``)."""
        if start_of is not None:
            self._starts[start_of] = len(self.pending)
        self.pending.append(write)
        self._count(size)
        self.resume()

    def replace_start(self, execution_id: str, complete: Callable[[W], W], size: int) -> bool:
        """If the execution's start row is still queued, replace it with ``complete(start)``
        (one complete row instead of an INSERT and an UPDATE) and say so."""
        position = self._starts.pop(execution_id, None)
        if position is None:
            return False
        self.pending[position] = complete(self.pending[position])
        self._count(size)
        return True

    def _count(self, size: int) -> None:
        self._pending_bytes += size
        self._uncommitted_bytes += size

    def resume(self) -> None:
        """Start the writer if something is queued and it is not running (it stops when the
        queue is empty, or after an outage until its retry delay is over)."""
        if self.pending and self._flush is None:
            self._flush = asyncio.ensure_future(self._write())

    # -- waiting -------------------------------------------------------------------------------

    def committed(self) -> asyncio.Future[StoreError | None]:
        """A future (this caller's own: cancelling it touches no one else) done once everything
        queued so far is committed: its result is None, or the StoreError that kept some of it
        from being written."""
        waiter: asyncio.Future[StoreError | None] = asyncio.get_running_loop().create_future()
        if self.pending:
            if not self._pending_waiters:
                self._cut_pause()  # someone waits now: no pause for unwaited writes
            self._pending_waiters.append(waiter)
        elif self._flush is not None:  # the last batch is being written
            self._writing_waiters.append(waiter)
        else:  # nothing queued nor being written: all committed already
            waiter.set_result(None)
        return waiter

    @property
    def uncommitted_bytes(self) -> int:
        """Bytes of history queued or being committed (roughly)."""
        return self._uncommitted_bytes

    def has_room(self) -> bool:
        """Whether the history not yet committed is under ``queue_bytes`` (``wait_for_room``
        would return True at once): the usual case, checked without a coroutine."""
        return self._uncommitted_bytes < self.queue_bytes

    async def wait_for_room(self, timeout: float) -> bool:
        """Wait until the history not yet committed is under ``queue_bytes``; False if it is
        still over after ``timeout`` seconds."""
        if self.has_room():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._cut_pause()  # the queue is full: write it now
        while not self.has_room():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._room is None:
                self._room = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._room), remaining)
            except TimeoutError:
                return False
        return True

    async def flush(self) -> None:
        """Commit everything queued so far, now (what an outage keeps back stays queued)."""
        self.resume()
        while self._flush is not None:
            self._urgent = True  # no pause between commits from now until the queue is empty
            self._cut_pause()  # and cut one under way short
            await asyncio.shield(self._flush)

    def _cut_pause(self) -> None:
        if self._hurry is not None and not self._hurry.done():
            self._hurry.set_result(None)

    # -- the writer ----------------------------------------------------------------------------

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let writes queued in the same loop iteration join the batch
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            while self.pending:
                if not self._pending_waiters:
                    # Nobody waits for these writes (a synchronous execution's start row, whose
                    # final record will mostly replace it; a background run's end): let more
                    # gather first. A waiter, or a read, cuts the pause short.
                    await self._pause(loop, began + COMMIT_INTERVAL - loop.time())
                else:
                    # Someone waits: first let the handlers that are ready to run this turn of
                    # the loop queue their records too, so concurrent answers share one commit,
                    # without ever leaving the loop idle (a timed delay would, when every
                    # connection is waiting for this very commit).
                    await asyncio.sleep(0)
                began = loop.time()
                batch, self.pending = self.pending, []
                size, self._pending_bytes = self._pending_bytes, 0
                self._writing_waiters, self._pending_waiters = self._pending_waiters, []
                self._starts.clear()
                outcome: StoreError | None = None
                retry: RetryLater | None = None
                try:
                    outcome = await self._commit_batch(batch)
                except RetryLater as exc:
                    retry, outcome = exc, exc.error
                finally:
                    if retry is not None:
                        # Back to the front: starts queued meanwhile moved back by as much.
                        self.pending[:0] = batch
                        self._pending_bytes += size
                        self._starts = {key: place + len(batch) for key, place in self._starts.items()}
                    else:
                        self._uncommitted_bytes -= size
                    waiters, self._writing_waiters = self._writing_waiters, []
                    for waiter in waiters:
                        if not waiter.done():  # its caller may have been cancelled
                            waiter.set_result(outcome)
                    if self._room is not None:
                        room, self._room = self._room, None
                        room.set_result(None)
                if retry is not None:
                    if self._urgent:
                        return  # a flush() waits: it is told, and the writer resumes later
                    await asyncio.sleep(retry.delay)
        finally:
            self._flush = None
            self._urgent = False

    async def _pause(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Let writes nobody waits for gather before they are committed: a commit has a fixed
        cost whatever it holds, so fewer, larger batches leave more CPU for executions.
        ``committed()`` and ``flush`` cut the pause short."""
        if seconds <= 0 or self._urgent or self._uncommitted_bytes >= self.queue_bytes:
            return
        hurry = self._hurry = loop.create_future()
        timer = loop.call_later(seconds, _resolve, hurry)
        try:
            await hurry
        finally:
            timer.cancel()
            self._hurry = None
