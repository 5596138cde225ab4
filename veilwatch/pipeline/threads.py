"""Overlap decode, inference and encode: a producer thread and a consumer thread around the caller.

Both use bounded queues (a slow stage slows its neighbours instead of filling memory), hand
exceptions over to the caller's thread, and shut down in `finally` with timeouts, so a stage that
raises cannot leave the process hanging.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()
JOIN_TIMEOUT_S = 30.0


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(make_items: Callable[[], Iterator[T]], depth: int, name: str) -> Iterator[T]:
    """Iterate `make_items()` in a background thread, up to `depth` items ahead of the caller."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in make_items():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, who re-raises it
            put(_Failure(exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(JOIN_TIMEOUT_S)


class BackgroundConsumer(Generic[T]):
    """Feeds items to `consume` in a background thread; errors surface on the next call."""

    def __init__(self, consume: Callable[[T], None], depth: int, name: str) -> None:
        self._consume = consume
        self._items: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain after a failure so the producer never blocks
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:
                self._error = exc

    def put(self, item: T) -> None:
        """Queue an item (blocks while the queue is full); raises a failure of the consumer."""
        self._raise_if_failed()
        self._items.put(item)

    def close(self) -> None:
        """Wait for every queued item to be consumed; raises a failure of the consumer."""
        self._items.put(_DONE)
        self._thread.join(JOIN_TIMEOUT_S * 10)
        if self._thread.is_alive():
            raise TimeoutError("the output stage did not finish in time")
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop consuming without raising (used while another error propagates)."""
        if self._error is None:
            self._error = RuntimeError("aborted")
        while self._thread.is_alive():
            try:
                self._items.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue  # the consumer drains the queue once it sees the error
        self._thread.join(JOIN_TIMEOUT_S)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
