"""Sending batches: waves, concurrency, build-ahead, holding answers, and stopping.

- Up to `concurrency` calls are in flight; a batch of a later wave goes only when every call of the
  earlier waves is answered.
- While calls are on the network the next call is built; a transport with `prepare_later` builds up
  to `prepare_ahead` calls elsewhere (other processes), in sending order.
- While calls keep going out, answers already in are held (at most `_HOLD_SECONDS` and `_HOLD_AT_MOST`
  calls) and handed back when the sender has to wait anyway (rate window, earlier wave); during the
  last window they are recorded as they come. Nothing is held for a failed call, at concurrency 1,
  or with `--no-dedup` (a lost answer there cannot be resent safely). Why: docs/performance-notes.md.
- A stop request (Ctrl-C, SIGTERM) or a fatal error sends nothing more and waits a while for the
  answers of the calls in flight.

The scheduler knows nothing of journals or state: it asks its owner before each send and hands each
finished call back, all on the thread that called `run`.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from reconcile.apply.batches import Batch, plan_batches
from reconcile.apply.events import ApplyEvent, BatchRetrying, BatchSent
from reconcile.apply.options import ApplyOptions

__all__ = ["DaemonPool", "Scheduler", "SendOutcome", "BatchHandler", "PlannedCalls", "calls_to_build_ahead"]

_POLL = 0.1
_PREPARE_ELSEWHERE_FROM = 4  # calls: fewer are built sooner here than worker processes start
_FATAL_GRACE = 3600.0  # after a fatal error, answers in flight are still worth recording
_FIRST_WINDOW = 100  # calls Marketo lets through at once: their records are kept from planning
_HOLD_AT_MOST = _FIRST_WINDOW  # answered calls held while more go out
_HOLD_SECONDS = 5.0  # ... and for at most this long after the first of them came in
_BUILD_AHEAD_AT_MOST = 100  # calls built here ahead of sending, while waiting for the rate window
_BUILD_WHEN_IDLE = 0.05  # ... for at most about this many seconds between looks at the calls in flight


class DaemonPool:
    """A minimal thread pool of daemon threads: an interrupted apply never waits at exit for a call."""

    def __init__(self, workers: int):
        self._workers = workers
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        if len(self._threads) < self._workers:
            thread = threading.Thread(target=self._run, name=f"reconcile-apply-{len(self._threads) + 1}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # delivered to the applying thread
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class BatchHandler(Protocol):
    """What the scheduler's owner does around each call (all on the applying thread)."""

    def built(self, batch: Batch) -> None:
        """`batch`'s call was built ahead of sending, while the sender waits: prepare what sending it
        needs too."""

    def before_send(self, batch: Batch) -> None: ...

    def finished(self, batch: Batch, future: Future) -> None: ...

    def tick(self, free_for: float = math.inf) -> None:
        """Time passes; `free_for`: about how long the sender has nothing to do (0: calls are ready to
        go out), so that what can wait does, unless it fits in the wait."""

    def emit(self, event: ApplyEvent) -> None: ...


@dataclass
class SendOutcome:
    not_sent: list[Batch] = field(default_factory=list)  # never handed to the transport
    unanswered: list[Batch] = field(default_factory=list)  # sent, no answer within the grace period


def calls_to_build_ahead(transport: Any, calls: int) -> int:
    """How many calls to have built elsewhere ahead of sending them (0: build here, one ahead)."""
    if getattr(transport, "prepare_later", None) is None or calls < _PREPARE_ELSEWHERE_FROM:
        return 0
    return max(0, int(getattr(transport, "prepare_ahead", 0)))


@dataclass
class PlannedCalls:
    """The calls that apply a plan, some perhaps already being built (by batch number): made before
    the plan is shown, so that envelopes are built while it is printed and confirmed."""

    batches: list[Batch]
    options: ApplyOptions
    building: dict[int, Future] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Any, transport: Any, options: ApplyOptions) -> "PlannedCalls":
        batches = plan_batches(plan, options.batch_size, options.dedup_enabled,
                               group_of=getattr(transport, "group_of", None),
                               size_of=getattr(transport, "size_of", None),
                               max_call_bytes=getattr(transport, "max_call_bytes", None),
                               size_bound_of=getattr(transport, "size_bound_of", None),
                               hold_first=_FIRST_WINDOW)
        return cls(batches, options)

    def start_building(self, transport: Any) -> None:
        """Hand the first calls to the transport's builders in other processes, if it has them. Nothing is
        sent: the scheduler takes them up if the apply goes ahead; closing the transport drops them."""
        ahead = calls_to_build_ahead(transport, len(self.batches))
        for batch in self.batches[:ahead]:
            if batch.number not in self.building:
                self.building[batch.number] = transport.prepare_later(batch.hold_records(),
                                                                      self.options.dedup_enabled)


class Scheduler:
    def __init__(self, transport: Any, options: ApplyOptions, handler: BatchHandler,
                 monotonic: Callable[[], float], stop: threading.Event):
        self.transport = transport
        self.options = options
        self.handler = handler
        self.monotonic = monotonic
        self.stop = stop
        self.halt = threading.Event()  # no new attempts: a stop request or a fatal error
        self.interrupted = False
        self.first_error: BaseException | None = None
        self._events: "queue.SimpleQueue[ApplyEvent]" = queue.SimpleQueue()  # from the worker threads
        self._prepare = getattr(transport, "prepare", None)
        self._prepare_later = getattr(transport, "prepare_later", None)
        self._window_opens_in = getattr(transport, "window_opens_in", None)
        self._built = getattr(handler, "built", None)

    def fail(self, error: BaseException) -> None:
        """A fatal error: remember the first, send nothing more."""
        if self.first_error is None:
            self.first_error = error
        self.halt.set()

    def drain_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.handler.emit(event)

    def run(self, batches: Sequence[Batch], building: dict[int, Future] | None = None) -> SendOutcome:
        """Send `batches`; `building`: calls already being built elsewhere, by batch number."""
        pool = DaemonPool(self.options.concurrency)
        pending: deque[Batch] = deque(batches)
        inflight: dict[Future, Batch] = {}
        try:
            try:
                self._send_all(pool, pending, inflight, dict(building or {}))
            except KeyboardInterrupt:
                self.interrupted = True
            except Exception as exc:  # e.g. an envelope that fails the XSD (a bug) or a journal write
                self.fail(exc)
            self.halt.set()
            unanswered = self._wind_down(inflight)
        finally:
            pool.shutdown()
            self.drain_events()
        return SendOutcome(not_sent=list(pending), unanswered=unanswered)

    def _send_all(self, pool: DaemonPool, pending: deque[Batch], inflight: dict[Future, Batch],
                  preparing: dict[int, Future]) -> None:
        """`preparing`: by batch number, calls being built elsewhere, in sending order."""
        ahead = calls_to_build_ahead(self.transport, len(pending))
        prepared: dict[int, Any] = {}  # built here, while calls were in flight
        answered: list[tuple[Future, Batch]] = []  # off the network, not yet handed back
        held_since, idle, left_over = 0.0, False, False
        try:
            while pending or inflight or answered:
                if self.stop.is_set() and not self.interrupted:
                    self.interrupted = True
                    self.halt.set()
                if self.halt.is_set():
                    break
                if ahead:
                    self._prepare_ahead(pending, preparing, ahead)
                waiting_for: Future | None = None
                while self._slot_open(pending, inflight):
                    batch = pending[0]
                    if batch.number in preparing:
                        if not preparing[batch.number].done():
                            waiting_for = preparing[batch.number]
                            break
                        call = preparing.pop(batch.number).result()  # EnvelopeInvalid: a bug, fatal
                    else:
                        call = prepared.pop(batch.number, None)
                        if call is None:
                            call = self._build(batch)
                    self.handler.before_send(batch)
                    pending.popleft()
                    inflight[pool.submit(self._send_one, batch, call)] = batch
                    self.handler.emit(BatchSent(batch=batch.number, records=batch.size))
                if not ahead and self._prepare is not None and not self.halt.is_set():
                    self._build_here(pending, prepared, idle)
                arrived = self._collect(inflight, 0.0 if left_over else _POLL, waiting_for, answered) \
                    if inflight or waiting_for is not None else []
                idle = not arrived and not answered
                if arrived and len(answered) == len(arrived):
                    held_since = self.monotonic()
                left_over = False
                if not self._may_hold(arrived, answered, pending, held_since):
                    left_over = not self._hand_back(
                        answered, until=lambda: self._may_send_first(pending, inflight, answered))
                self.handler.tick(self._free_for(pending, idle))
        finally:
            for future in preparing.values():
                future.cancel()  # not sent: no need to finish building it
            self._hand_back(answered)

    def _free_for(self, pending: deque[Batch], idle: bool) -> float:
        """How long the sender will have nothing to do: nothing while calls are going out, nor once the
        last are out (the final state write follows their answers), nor while it waits for answers
        (the next may come at any moment, and a call goes out on it); while it waits for the rate
        window, until the window lets the next call start."""
        if not pending or not idle or self._window_opens_in is None:
            return 0.0
        return self._window_opens_in()

    def _build_here(self, pending: deque[Batch], prepared: dict[int, Any], idle: bool) -> None:
        """Build the next call while calls are on the network; while the sender waits with nothing else
        to do (for the rate window), build a few more, up to a window's worth, so that the calls the
        window lets through next go out without being built then."""
        until = self.monotonic() + _BUILD_WHEN_IDLE
        for batch in itertools.islice(pending, _BUILD_AHEAD_AT_MOST if idle else 1):
            if batch.number not in prepared:
                prepared[batch.number] = self._build(batch)
                if idle and self._built is not None:
                    self._built(batch)
                if self.monotonic() >= until:
                    return

    def _prepare_ahead(self, pending: deque[Batch], preparing: dict[int, Future], ahead: int) -> None:
        for batch in itertools.islice(pending, ahead):
            if batch.number not in preparing:
                preparing[batch.number] = self._prepare_later(batch.hold_records(), self.options.dedup_enabled)

    def _collect(self, inflight: dict[Future, Batch], timeout: float, also: Future | None = None,
                 answered: list[tuple[Future, Batch]] | None = None) -> list[Future]:
        """Take the calls answered within `timeout` off `inflight`, returning early when `also` is done:
        into `answered` if given, else handed back at once. Returns the futures taken."""
        done, _ = wait(list(inflight) + ([also] if also is not None else []), timeout=timeout,
                       return_when=FIRST_COMPLETED)
        self.drain_events()
        arrived = sorted((f for f in done if f in inflight), key=lambda f: inflight[f].number)
        taken = [(future, inflight.pop(future)) for future in arrived]
        if answered is None:
            self._hand_back(taken)
        else:
            answered.extend(taken)
        return arrived

    def _may_hold(self, arrived: list[Future], answered: list[tuple[Future, Batch]], pending: deque[Batch],
                  held_since: float) -> bool:
        """Whether the answers in may wait while more calls go out (see the module's docstring)."""
        return self.options.concurrency > 1 and self.options.dedup_enabled and bool(arrived) \
            and bool(pending) and len(pending) >= _FIRST_WINDOW and not self.halt.is_set() \
            and len(answered) < _HOLD_AT_MOST \
            and self.monotonic() - held_since < _HOLD_SECONDS \
            and all(future.exception() is None for future in arrived) \
            and all(batch.wave >= pending[0].wave for _, batch in answered)

    def _slot_open(self, pending: deque[Batch], inflight: dict[Future, Batch]) -> bool:
        """Whether the next call may go out now: a slot is free, and no call of an earlier wave is on
        the network."""
        return bool(pending) and len(inflight) < self.options.concurrency and not self.halt.is_set() \
            and all(b.wave >= pending[0].wave for b in inflight.values())

    def _may_send_first(self, pending: deque[Batch], inflight: dict[Future, Batch],
                        answered: list[tuple[Future, Batch]]) -> bool:
        """Whether the next call may go out before the answers still to record: a slot is open, and
        none of those answers is a failure (which may stop the apply) or of an earlier wave."""
        return self.options.dedup_enabled and self._slot_open(pending, inflight) \
            and all(future.exception() is None and batch.wave >= pending[0].wave for future, batch in answered)

    def _hand_back(self, answered: list[tuple[Future, Batch]], until: Callable[[], bool] | None = None) -> bool:
        """Hand each answered call to the owner, in sending order, each once whatever happens; with
        `until`, stop as soon as it says a call should go out first. False if some stay in `answered`."""
        answered.sort(key=lambda item: item[1].number)
        while answered:
            future, batch = answered.pop(0)
            try:
                self.handler.finished(batch, future)
            finally:
                batch.release_records()
            if until is not None and answered and until():
                return False
        return True

    def _wind_down(self, inflight: dict[Future, Batch]) -> list[Batch]:
        """After a stop or a fatal error: collect the answers still coming, within limits."""
        deadline = self.monotonic() + (self.options.stop_grace if self.interrupted else _FATAL_GRACE)
        try:
            while inflight:
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    break
                self._collect(inflight, min(_POLL, remaining))
                if self.stop.is_set() and not self.interrupted:
                    self.interrupted = True
                    deadline = min(deadline, self.monotonic() + self.options.stop_grace)
        except KeyboardInterrupt:
            self.interrupted = True
        return sorted(inflight.values(), key=lambda b: b.number)

    def _build(self, batch: Batch) -> Any:
        if self._prepare is None:
            return batch.hold_records()
        return self._prepare(batch.hold_records(), self.options.dedup_enabled)

    def _send_one(self, batch: Batch, call: Any) -> Any:
        def on_retry(info: Any) -> None:
            self._events.put(BatchRetrying(batch=batch.number, attempt=info.attempt, delay=info.delay,
                                           reason=info.reason))

        return self.transport.send(call, self.options.dedup_enabled, stop=self.halt, on_retry=on_retry)
