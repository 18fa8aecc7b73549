"""The async runner: one asyncio loop on a background thread runs all cloud work (DESIGN.md).

The GUI thread never waits on the network.  A page submits a coroutine; its result or error comes back on
the GUI thread through a queued Qt signal.  Every operation can be cancelled (the coroutine really gets
CancelledError), and a result that arrives after its operation was cancelled or replaced is dropped.

The loop (and asyncio itself, ~70 ms of imports) starts on the first submit, not before the first paint.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger("xtwizard.runner")

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]


class Operation:
    """A handle on submitted work: cancel it, or ask whether it is still the current one."""

    def __init__(self, op_id: int, key: str | None) -> None:
        self.id = op_id
        self.key = key
        self.cancelled = False
        self.future: concurrent.futures.Future[Any] | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.future is not None:
            self.future.cancel()  # run_coroutine_threadsafe cancels the task on the loop

    @property
    def running(self) -> bool:
        return self.future is not None and not self.future.done()


class AsyncRunner(QObject):
    _deliver = Signal(object, object, object)  # operation, result, error

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Done | None, Failed | None]] = {}
        self._current: dict[str, Operation] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use (with the connection that brings answers back)."""
        if self._loop is None:
            # Imported here, not at the top: asyncio (~70 ms) and `Qt`'s enums (~25 ms) would delay the first paint.
            import asyncio

            from PySide6.QtCore import Qt

            # Always queued: a coroutine that finishes before submit() returns would otherwise have its
            # done-callback run on the GUI thread and deliver the answer inside submit(), before the caller holds
            # the Operation.
            self._deliver.connect(self._on_deliver, Qt.ConnectionType.QueuedConnection)
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="xtwizard-async", daemon=True)
            self._thread.start()
        return self._loop

    def submit(self, work: Callable[[], Awaitable[Any]], *, on_done: Done | None = None,
               on_error: Failed | None = None, key: str | None = None) -> Operation:
        """Run `work()` on the loop.  With `key`, an earlier operation with the same key is cancelled
        (the page asked again; its old answer would be stale)."""
        op = Operation(next(self._ids), key)
        if key is not None:
            old = self._current.get(key)
            if old is not None:
                old.cancel()
            self._current[key] = op
        self._callbacks[op.id] = (on_done, on_error)

        async def wrapped() -> Any:
            return await work()

        import asyncio

        fut = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        op.future = fut

        def finished(f: concurrent.futures.Future[Any]) -> None:
            if f.cancelled():
                self._deliver.emit(op, None, asyncio.CancelledError())
                return
            exc = f.exception()
            self._deliver.emit(op, None if exc else f.result(), exc)

        fut.add_done_callback(finished)
        return op

    @Slot(object, object, object)
    def _on_deliver(self, op: Operation, result: Any, error: BaseException | None) -> None:
        import asyncio

        on_done, on_error = self._callbacks.pop(op.id, (None, None))
        if op.key is not None and self._current.get(op.key) is op:
            del self._current[op.key]
        if op.cancelled or isinstance(error, asyncio.CancelledError):
            return  # cancelled or replaced: the page no longer wants this answer
        if error is not None:
            if on_error is not None:
                on_error(error)
            else:
                log.error("background operation failed", exc_info=error)
        elif on_done is not None:
            on_done(result)

    def cancel_all(self) -> None:
        for op in list(self._current.values()):
            op.cancel()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel what runs, stop the loop and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return  # never started

        def stop() -> None:
            import asyncio

            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.stop()

        if loop.is_running():
            loop.call_soon_threadsafe(stop)
        thread.join(timeout)
        if not loop.is_running():
            loop.close()
