"""Reading leads from Marketo for an import: Get Leads calls of up to 300 IDs or emails each.

The calls run in parallel, `concurrency` at a time, through the same client as apply's writes: its
rate limiter, its call slots, its retry loop and its quota handling. So an import of many leads
takes about what Marketo's rate window allows, and a failure stops the remaining calls.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from reconcile.adopt.request import ImportRequest
from reconcile.errors import Interrupted
from reconcile.remote.base import RetryInfo

PER_CALL = 300  # Get Leads takes at most 300 filter values
T = TypeVar("T")


@dataclass(frozen=True)
class ReadCall:
    number: int  # 1-based, in the order the calls are planned: IDs first, then emails
    filter_type: str  # "id" or "email"
    values: tuple[int | str, ...]


@dataclass(frozen=True)
class CallAnswered:
    call: ReadCall
    found: int
    answered: int  # calls answered so far
    calls: int


@dataclass(frozen=True)
class CallRetrying:
    call: ReadCall
    delay: float
    reason: str


ReadEvent = CallAnswered | CallRetrying


def read_calls(request: ImportRequest) -> list[ReadCall]:
    chunks: list[tuple[str, Sequence[int | str]]] = []
    chunks += [("id", request.ids[i:i + PER_CALL]) for i in range(0, len(request.ids), PER_CALL)]
    chunks += [("email", request.emails[i:i + PER_CALL]) for i in range(0, len(request.emails), PER_CALL)]
    return [ReadCall(number, kind, tuple(values)) for number, (kind, values) in enumerate(chunks, start=1)]


def read_leads(client: Any, calls: Sequence[ReadCall], fields: Sequence[str], convert: Callable[[list[dict]], T], *,
               concurrency: int, on_event: Callable[[ReadEvent], None] = lambda event: None,
               stop: threading.Event | None = None) -> list[T]:
    """`convert` of each call's lead rows, in the order of `calls`. Conversion runs in the reading
    threads, while the other calls wait for Marketo's rate window. The first failure stops the calls
    not yet started and is raised once the running ones end."""
    stop = stop if stop is not None else threading.Event()
    results: list[Any] = [None] * len(calls)
    if not calls:
        return []
    lock = threading.Lock()
    answered = [0]

    def run(index: int, call: ReadCall) -> None:
        def retrying(info: RetryInfo) -> None:
            on_event(CallRetrying(call, info.delay, info.reason))

        rows = client.get_leads(call.filter_type, list(call.values), fields, stop=stop, on_retry=retrying)
        results[index] = convert(rows)
        with lock:
            answered[0] += 1
            event = CallAnswered(call, len(rows), answered[0], len(calls))
        on_event(event)

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(calls))), thread_name_prefix="import-read")
    futures: list[Future] = []
    try:
        futures = [pool.submit(run, index, call) for index, call in enumerate(calls)]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((future for future in futures if future.done() and future.exception() is not None), None)
        if failed is not None:
            stop.set()
            for future in futures:
                future.cancel()
            wait(futures)
            raise _first_error(futures)
    except KeyboardInterrupt:
        stop.set()
        for future in futures:
            future.cancel()
        wait(futures)
        raise Interrupted("interrupted: the import read some leads and wrote nothing") from None
    finally:
        pool.shutdown(wait=True)
    return results


def _first_error(futures: Sequence[Future]) -> BaseException:
    """The failure that stopped the import, not the `stopped` errors of the calls it then cut short."""
    errors = [future.exception() for future in futures if not future.cancelled() and future.exception() is not None]
    from reconcile.remote.http import Stopped

    real = [error for error in errors if not isinstance(error, (Stopped, Interrupted))]
    return (real or errors)[0]
