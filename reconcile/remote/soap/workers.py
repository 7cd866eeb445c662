"""Envelopes built in worker processes, so xmlschema's validation of every envelope runs on every core.

xmlschema walks a 300-record envelope (thousands of elements) in pure Python, holding one
interpreter's lock. :class:`EnvelopeWorkers` runs :func:`envelope.build_request`
(build, validate with xmlschema, sign) in a pool of processes instead. Each worker compiles the
schema once, when it starts; the bytes it returns are exactly those the same call makes in the
applying process, since it runs the same function on the same arguments (the timestamp is chosen
by the caller).

The encryption key reaches the workers once, as an argument of their start-up, over the pipe to
our own child process: it is never written or logged. Workers ignore Ctrl-C (the applying process
decides how to stop), print nothing, exit when the applying process is gone (even killed), and
are reaped by :meth:`EnvelopeWorkers.close`, so their CPU is counted in the applying process's
children.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Sequence

from reconcile.core.records import LeadRecord

__all__ = ["EnvelopeWorkers"]

# Set once in each worker process by _start_worker; never in the applying process.
_worker_credentials: dict[str, str] = {}


def _start_worker(user_id: str, encryption_key: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _leave_the_terminal_to_the_applying_process()
    threading.Thread(target=_exit_with_the_applying_process, name="reconcile-worker-watch", daemon=True).start()
    _worker_credentials.update(user_id=user_id, encryption_key=encryption_key)
    from reconcile.remote.soap import envelope

    envelope.compiled_schema()  # once per worker, before its first envelope


def _leave_the_terminal_to_the_applying_process() -> None:
    """Only the CLI prints; and a worker holding the apply's stdout or stderr open would keep a
    caller reading them waiting after the apply is gone."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _exit_with_the_applying_process() -> None:
    """A worker waits for envelopes on a queue whose ends it holds itself, so it would never notice
    its applying process killed (kill -9): watch that process and leave with it."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
    os._exit(0)


def _build(records: Sequence[LeadRecord], timestamp: str, dedup_enabled: bool) -> bytes:
    from reconcile.remote.soap import envelope

    # xmlschema's walk makes objects by the hundred thousand, nearly all freed by reference counting:
    # collections triggered by them find no garbage.
    gc.disable()
    try:
        return envelope.build_request(records, user_id=_worker_credentials["user_id"],
                                      encryption_key=_worker_credentials["encryption_key"], timestamp=timestamp,
                                      dedup_enabled=dedup_enabled)
    finally:
        gc.enable()


class EnvelopeWorkers:
    """A pool of `workers` processes that build signed, xmlschema-validated envelopes."""

    def __init__(self, workers: int, *, user_id: str, encryption_key: str):
        if workers < 1:
            raise ValueError("EnvelopeWorkers needs at least one worker")
        self.workers = workers
        # spawn, not fork: the applying process has threads (and a large plan) by the time it asks
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker, initargs=(user_id, encryption_key))

    def submit(self, records: Sequence[LeadRecord], timestamp: str, dedup_enabled: bool) -> "Future[bytes]":
        """The envelope of `records` signed for `timestamp`, byte for byte what build_request returns."""
        return self._pool.submit(_build, tuple(records), timestamp, dedup_enabled)

    def close(self) -> None:
        """Drop the envelopes not yet started and wait for the workers to exit."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"EnvelopeWorkers(workers={self.workers})"
