"""Sending comes before recording: answers that come in while calls keep going out are held, within
bounds, and every answer is still handed back exactly once, in sending order.

The scheduler alone, with a transport that answers at once and an owner that logs what it is asked to
do: "send N" is the journal's in-flight entry for call N, "record N" its answer.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reconcile.apply import schedule
from reconcile.apply.batches import Batch
from reconcile.apply.options import ApplyOptions
from reconcile.apply.schedule import Scheduler


@pytest.fixture(autouse=True)
def every_call_in_one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are held only while a window's worth of calls is still to go: here, always, unless a
    test says otherwise."""
    monkeypatch.setattr(schedule, "_FIRST_WINDOW", 0)


class InstantTransport:
    """Answers every call at once; a call listed in `failing` raises instead."""

    def __init__(self, failing: tuple[int, ...] = ()):
        self.failing = failing

    def send(self, call: Any, dedup_enabled: bool, **_: Any) -> list:
        batch_number = call
        if batch_number in self.failing:
            raise RuntimeError(f"call {batch_number} failed")
        return []


class Owner:
    def __init__(self, clock: list[float], seconds_a_step: float = 0.0):
        self.log: list[str] = []
        self.clock = clock
        self.seconds_a_step = seconds_a_step

    def before_send(self, batch: Batch) -> None:
        self.log.append(f"send {batch.number}")
        self.clock[0] += self.seconds_a_step

    def finished(self, batch: Batch, future: Any) -> None:
        self.log.append(f"record {batch.number}" + (" (failed)" if future.exception() else ""))
        if future.exception() is not None:
            self.scheduler.fail(future.exception())  # as the apply does: a failed call stops it

    def tick(self, free_for: float = 0.0) -> None:
        pass

    def emit(self, event: Any) -> None:
        pass


def run(batches: int, concurrency: int, *, seconds_a_step: float = 0.0, failing: tuple[int, ...] = (),
        waves: dict[int, int] | None = None, dedup: bool = True) -> list[str]:
    clock = [0.0]
    owner = Owner(clock, seconds_a_step)
    transport = InstantTransport(failing)
    transport.prepare = lambda records, dedup: records  # type: ignore[attr-defined]
    scheduler = Scheduler(transport, ApplyOptions(batch_size=1, concurrency=concurrency, dedup_enabled=dedup), owner,
                          lambda: clock[0], threading.Event())
    owner.scheduler = scheduler
    plan = [Batch(number=n, wave=(waves or {}).get(n, 0), indexes=(n,), actions=()) for n in range(1, batches + 1)]
    for batch in plan:
        batch._held.append(batch.number)  # the "records": the transport above answers by batch number
    scheduler.run(plan)
    return owner.log


def sends_and_records(log: list[str]) -> tuple[list[int], list[int]]:
    return ([int(e.split()[1]) for e in log if e.startswith("send")],
            [int(e.split()[1]) for e in log if e.startswith("record")])


def test_answers_wait_while_calls_go_out_and_each_is_recorded_once_in_order() -> None:
    log = run(12, concurrency=4)
    sent, recorded = sends_and_records(log)
    assert sent == list(range(1, 13)) and recorded == list(range(1, 13))
    assert log.index("send 12") < log.index("record 1"), log  # nothing kept the sender waiting


def test_one_call_at_a_time_records_each_answer_before_the_next_call() -> None:
    log = run(5, concurrency=1)
    assert log == [f"{what} {n}" for n in range(1, 6) for what in ("send", "record")]


def test_without_dedup_no_answer_waits_behind_a_later_call() -> None:
    log = run(12, concurrency=4, dedup=False)
    for n in range(1, 8):  # a crash must not lose a create's answer that could have been recorded
        assert log.index(f"record {n}") < log.index(f"send {n + 4 + 1}"), log


def test_answers_are_held_for_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    log = run(12, concurrency=4, seconds_a_step=schedule._HOLD_SECONDS / 3)
    # answered by send 4; held through 3 more sends (2 s), and at most one pass more
    assert log.index("record 1") < log.index("send 9"), log
    sent, recorded = sends_and_records(log)
    assert sent == recorded == list(range(1, 13))


def test_answers_are_held_for_a_bounded_number_of_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "_HOLD_AT_MOST", 3)
    log = run(12, concurrency=4)
    assert log.index("record 1") < log.index("send 8"), log
    held = max(sum(1 for e in log[:i] if e.startswith("send")) - sum(1 for e in log[:i] if e.startswith("record"))
               for i in range(len(log)))
    assert held <= 3 + 4, log  # at most 3 held, 4 on the network


def test_a_failed_call_is_handed_back_before_anything_more_is_sent() -> None:
    log = run(12, concurrency=4, failing=(2,))
    failed_at = log.index("record 2 (failed)")
    assert [e for e in log[failed_at:] if e.startswith("send")] == [], log
    sent, _ = sends_and_records(log)
    assert len(sent) < 12, log  # the failure stopped the apply: it was not held while all went out
    assert "record 1" in log


def test_a_later_wave_waits_for_the_earlier_answers_to_be_recorded() -> None:
    log = run(6, concurrency=4, waves={4: 1, 5: 1, 6: 1})
    assert log.index("record 3") < log.index("send 4"), log


def test_the_last_windows_answers_are_recorded_as_they_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "_FIRST_WINDOW", 6)
    log = run(12, concurrency=2)
    assert log.index("send 6") < log.index("record 1"), log  # six or more still to go: held
    assert log.index("record 9") < log.index("send 12"), log  # fewer than six to go: recorded between calls


def test_the_sender_is_free_until_the_rate_window_opens_when_that_is_what_it_waits_for():
    from collections import deque

    opens_in = [2.5]
    transport = InstantTransport()
    transport.window_opens_in = lambda: opens_in[0]  # type: ignore[attr-defined]
    scheduler = Scheduler(transport, ApplyOptions(), Owner([0.0]), lambda: 0.0, threading.Event())
    waiting = deque([Batch(number=2, wave=0, indexes=(2,), actions=())])
    assert scheduler._free_for(waiting, idle=False) == 0.0, "calls are going out"
    assert scheduler._free_for(waiting, idle=True) == 2.5, "waiting for the window: free until it opens"
    assert scheduler._free_for(deque(), idle=True) == 0.0, "the last calls are out: the final write is near"
    opens_in[0] = 0.0
    assert scheduler._free_for(waiting, idle=True) == 0.0, "waiting for answers: one may come any moment"
    without = Scheduler(InstantTransport(), ApplyOptions(), Owner([0.0]), lambda: 0.0, threading.Event())
    assert without._free_for(waiting, idle=True) == 0.0


def test_calls_built_while_the_sender_waits_are_handed_to_the_owner_to_prepare_their_sending():
    from collections import deque

    transport = InstantTransport()
    transport.prepare = lambda records, dedup: records  # type: ignore[attr-defined]
    owner = Owner([0.0])
    built = []
    owner.built = built.append  # type: ignore[attr-defined]
    scheduler = Scheduler(transport, ApplyOptions(), owner, lambda: 0.0, threading.Event())
    pending = deque(Batch(number=n, wave=0, indexes=(n,), actions=()) for n in range(1, 6))
    prepared: dict = {}
    scheduler._build_here(pending, prepared, idle=False)
    assert sorted(prepared) == [1] and built == [], "busy: the next call only, its sending prepared then"
    scheduler._build_here(pending, prepared, idle=True)
    assert sorted(prepared) == [1, 2, 3, 4, 5] and [b.number for b in built] == [2, 3, 4, 5]


@pytest.fixture
def answers_come_in_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call on the network is answered before the sender looks: several answers wait at once."""
    from concurrent.futures import wait

    real_collect = Scheduler._collect

    def all_at_once(self, inflight, timeout, also=None, answered=None):
        wait(list(inflight), timeout=5)
        return real_collect(self, inflight, timeout, also, answered)

    monkeypatch.setattr(Scheduler, "_collect", all_at_once)
    monkeypatch.setattr(schedule, "_FIRST_WINDOW", 100)  # fewer than a window to go: nothing is held


@pytest.mark.usefixtures("answers_come_in_together")
def test_answers_that_come_in_together_let_the_next_call_out_after_the_first_is_recorded() -> None:
    log = run(8, concurrency=4)
    assert log[:6] == ["send 1", "send 2", "send 3", "send 4", "record 1", "send 5"], log
    sent, recorded = sends_and_records(log)
    assert sent == recorded == list(range(1, 9))


@pytest.mark.usefixtures("answers_come_in_together")
@pytest.mark.parametrize("dedup, failing", [(False, ()), (True, (3,))])
def test_without_dedup_or_with_a_failure_waiting_every_answer_in_is_recorded_first(dedup, failing) -> None:
    log = run(8, concurrency=4, dedup=dedup, failing=failing)
    assert log[4:8] == ["record 1", "record 2", "record 3" + (" (failed)" if failing else ""), "record 4"], log
