"""A pause of the cyclic garbage collector for code that builds many acyclic objects at once."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    Each collection would walk every object alive (all leads, all state records): with 100k leads
    that is a third of the planning time, for no garbage found. Reference counting still frees memory.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Leave every object alive now out of the cyclic collector's walks for a while (gc.freeze).

    During an apply, the plan, the leads and the state are alive throughout and hold no garbage, yet
    every full collection walked them all: 0.2 to 0.5 s each, several an apply, each stopping the
    sender in the middle of a rate window. Objects made meanwhile are still collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
