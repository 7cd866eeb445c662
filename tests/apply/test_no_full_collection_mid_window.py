"""The cyclic collector during an apply: no full collection starts by itself in the middle of a rate
window; the apply runs one when it knows it will wait for the window, and cyclic garbage is still freed."""

from __future__ import annotations

import gc
import time
import weakref

import pytest

from reconcile.apply import apply_plan
from reconcile.apply import engine
from reconcile.core.gcpause import collect_and_freeze, gc_frozen
from reconcile.core.model import Lead, State
from reconcile.core.planner import plan as make_plan
from reconcile.core.records import SyncStatus
from reconcile.errors import Location


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it


def full_collections_while(make) -> int:
    seen = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            seen.append(info)

    gc.collect()
    gc.callbacks.append(count)
    try:
        make()
    finally:
        gc.callbacks.remove(count)
    return len(seen)


def keep_many_objects() -> list:
    """Enough long-lived objects that the collector would start full collections over them."""
    return [[n] for n in range(400_000)]


def test_without_the_pause_keeping_many_objects_starts_full_collections():
    assert full_collections_while(keep_many_objects) >= 1  # so the next test can fail


def test_while_frozen_no_full_collection_starts_by_itself_and_thresholds_come_back():
    before = gc.get_threshold()
    with gc_frozen():
        assert full_collections_while(keep_many_objects) == 0
    assert gc.get_threshold() == before


def test_collect_and_freeze_frees_cyclic_garbage_made_while_frozen():
    with gc_frozen():
        node = Node()
        gone = weakref.ref(node)
        del node
        collect_and_freeze()
        assert gone() is None


class WindowBoundTransport:
    """Answers each call after `seconds`; says the rate window opens in `opens_in` seconds."""

    def __init__(self, opens_in: float, seconds: float = 0.25):
        self.opens_in, self.seconds, self.ids = opens_in, seconds, iter(range(1000, 2000))

    def window_opens_in(self) -> float:
        return self.opens_in

    def send(self, records, dedup_enabled=True, **_):
        time.sleep(self.seconds)
        return [SyncStatus(next(self.ids), "CREATED") for _ in records]


def collections_in_apply(tmp_path, monkeypatch, opens_in: float) -> int:
    made = []
    monkeypatch.setattr(engine, "collect_and_freeze", lambda: made.append(1))
    leads = [Lead(location=Location("leads/x.yaml", n + 1), email=f"l{n}@example.com", attributes={})
             for n in range(3)]
    state = State(lineage="l", serial=0, leads={})
    report = apply_plan(make_plan(leads, state), state, tmp_path / "s.json", WindowBoundTransport(opens_in),
                        batch_size=1, concurrency=1)
    assert len(report.created) == 3
    return len(made)


@pytest.mark.parametrize("opens_in, expected", [(5.0, "some"), (0.5, "none"), (0.0, "none")])
def test_an_apply_collects_only_while_it_waits_long_enough_for_the_rate_window(tmp_path, monkeypatch,
                                                                                 opens_in, expected):
    made = collections_in_apply(tmp_path, monkeypatch, opens_in)
    if expected == "some":
        assert 1 <= made <= 2  # at most once per answer recorded since the last: 3 calls, 2 waits
    else:
        assert made == 0  # 0.0: waiting for answers, not the window; 0.5: too short a wait
