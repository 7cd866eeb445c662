"""Calls sent a few at a time, each answer handed back as it comes (list and delete calls)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Iterable, Iterator, TypeVar

Call = TypeVar("Call")
Answer = TypeVar("Answer")


class _NotSent(Exception):
    """A call left unsent: an earlier one failed, the apply was asked to stop, or the caller stopped listening."""


def answered_in_turn(calls: Iterable[Call], send: Callable[[Call], Answer], concurrency: int,
                     stop: threading.Event | None = None) -> Iterator[tuple[Call, Answer]]:
    """Send `calls`, at most `concurrency` at once, and yield each with its answer as it comes.

    The calls are queued at once, so what the caller does with an answer (journal it, write the state)
    never holds the next call back: the rate window is used as soon as it opens. No call starts after
    one has raised, after `stop` is set (Ctrl-C), or once the caller stops listening (closes this
    generator, or raises out of its loop): the answers of the calls in flight are still yielded, then
    the first error, if any, is raised. Use it in a `with contextlib.closing(...)` or a `for` loop, so
    that a caller's error stops the sending at once.
    """
    halt = threading.Event()

    def unless_stopped(call: Call) -> Answer:
        if halt.is_set() or (stop is not None and stop.is_set()):
            raise _NotSent()
        try:
            return send(call)
        except BaseException:
            halt.set()  # at once, from the thread that saw it: the next queued call must not go out
            raise

    first_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        queued: dict = {}
        try:
            for call in calls:
                queued[pool.submit(unless_stopped, call)] = call
            for future in as_completed(queued):
                error = None if future.cancelled() else future.exception()
                if future.cancelled() or isinstance(error, _NotSent):
                    continue
                if error is not None:
                    first_error = first_error or error
                    continue
                yield queued[future], future.result()
        finally:
            halt.set()
            for future in queued:
                future.cancel()
    if first_error is not None:
        raise first_error
