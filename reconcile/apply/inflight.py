"""Calls sent a few at a time, each answer handed back as it comes (list and delete calls)."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

Call = TypeVar("Call")
Answer = TypeVar("Answer")


def answered_in_turn(calls: Iterable[Call], send: Callable[[Call], Answer], concurrency: int
                     ) -> Iterator[tuple[Call, Answer]]:
    """Send `calls`, at most `concurrency` at once, and yield each with its answer as it comes (the
    caller records one answer before the next is handed over). After a call raises, no more are sent:
    the answers of those already in flight are yielded, then that first error is raised."""
    pending = iter(calls)
    inflight: dict[Future, Call] = {}
    failures: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        def fill() -> None:
            while not failures and len(inflight) < max(1, concurrency):
                call = next(pending, _END)
                if call is _END:
                    return
                inflight[pool.submit(send, call)] = call

        fill()
        while inflight:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                call = inflight.pop(future)
                error = future.exception()
                if error is not None:
                    failures.append(error)
                else:
                    yield call, future.result()
            fill()
    if failures:
        raise failures[0]


_END = object()
