"""List and delete calls sent a few at a time: the caller's work on one answer never holds back the
next call, and a failed call, a stop request or a caller that gives up stops the sending."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from reconcile.apply.inflight import answered_in_turn


def test_a_slow_caller_does_not_hold_back_the_calls_still_to_send() -> None:
    sent, lock = [], threading.Lock()

    def send(call: int) -> int:
        with lock:
            sent.append(call)
        return call * 10

    answers = answered_in_turn(range(8), send, concurrency=2)
    first = next(answers)
    deadline = time.monotonic() + 5
    while len(sent) < 8 and time.monotonic() < deadline:  # the caller is busy with its first answer
        time.sleep(0.01)
    assert sorted(sent) == list(range(8)), "calls waited for the caller to finish with an answer"
    rest = list(answers)
    assert sorted([first, *rest]) == [(n, n * 10) for n in range(8)]


def test_after_a_call_fails_no_more_are_sent_and_its_error_comes_last() -> None:
    sent = []

    def send(call: int) -> int:
        sent.append(call)
        if call == 2:
            raise RuntimeError("refused")
        return call

    received = []
    with pytest.raises(RuntimeError, match="refused"):
        for call, answer in answered_in_turn(range(10), send, concurrency=1):
            received.append(answer)
    assert sent == [0, 1, 2] and received == [0, 1]


def test_a_caller_that_raises_in_its_loop_stops_the_sending() -> None:
    sent = []

    def send(call: int) -> int:
        sent.append(call)
        time.sleep(0.01)  # calls are in flight when the caller gives up
        return call

    with pytest.raises(ValueError):
        with contextlib.closing(answered_in_turn(range(50), send, concurrency=2)) as answers:
            for _ in answers:
                raise ValueError("the caller's own error (a journal it cannot write)")
    settled = len(sent)
    assert settled < 50
    time.sleep(0.2)
    assert len(sent) == settled, "calls went on after the caller stopped"


def test_a_stop_request_sends_no_further_call_and_yields_the_answers_in_flight() -> None:
    stop, sent = threading.Event(), []

    def send(call: int) -> int:
        sent.append(call)
        if call == 1:
            stop.set()  # Ctrl-C while the second call is in flight
        return call

    received = [answer for _, answer in answered_in_turn(range(10), send, concurrency=1, stop=stop)]
    assert sent == [0, 1] and received == [0, 1]
