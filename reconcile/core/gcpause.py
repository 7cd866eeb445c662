"""A pause of the cyclic garbage collector for code that builds many acyclic objects at once."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects: once per command, around
    all of it (leads, state records and plans hold no reference cycles; reference counting still frees
    them). Each collection would walk every object alive, for no garbage found. Sending resumes it
    (`gc_frozen`).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# During gc_frozen, a full collection starts by itself only after this many young (generation 1)
# collections, about 7 million objects made and kept: in practice, only at the idle moments
# `collect_and_freeze` is called at. Young collections still run as usual.
_FULL_COLLECTION_AFTER = 1000


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Leave every object alive now out of the cyclic collector's walks for a while (gc.freeze), and
    run full collections only when the caller says it has time (`collect_and_freeze`).

    During an apply, the plan, the leads and the state are alive throughout and hold no garbage, yet
    every full collection walked them all, each stopping the sender in the middle of a rate window;
    so did full collections over the state records made from the answers. Young objects are still
    collected as they come (docs/performance-notes.md has the figures).
    """
    thresholds = gc.get_threshold()
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], _FULL_COLLECTION_AFTER))
    gc.enable()  # within a command's `gc_paused`: answers and connections do make garbage
    try:
        yield
    finally:
        if not was_enabled:
            gc.disable()
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def collect_and_freeze() -> None:
    """A full collection of what was made since the last freeze, and a freeze of what survives it:
    for a moment when nothing waits on this thread (within `gc_frozen`)."""
    gc.collect()
    gc.freeze()
