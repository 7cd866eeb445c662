"""One lookup key in two Sync Leads calls at once: Marketo's documented duplicate race.

Marketo's REST documentation warns that concurrent or closely timed upserts with the same key value
can create duplicates: each call looks the key up before the other has written. The emulator plays
this out so that a client's promise never to put one key in two calls at once can be tested: a call
whose lookup key is also in another call in flight sees that key as it was when the call began.
When no lead held it then, the call creates one, even if the other call has created one meanwhile.
"""

from __future__ import annotations

import collections
import threading
from typing import Iterable


class KeysInFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: collections.Counter[str] = collections.Counter()

    def enter(self, keys: Iterable[str]) -> set[str]:
        """Register a call's keys; return those another call in flight holds too."""
        keys = set(keys)
        with self._lock:
            racing = {key for key in keys if self._keys[key]}
            self._keys.update(keys)
        return racing

    def leave(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._keys.subtract(set(keys))
            self._keys += collections.Counter()  # drop the keys no call holds any more
