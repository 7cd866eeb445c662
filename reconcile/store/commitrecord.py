"""The bytes the state writer puts on disk: a shard's lines, and the commit record (statefiles.py,
"Writing") that makes a write durable before any shard is touched."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from reconcile.store.statecodec import compact_json


def shard_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def pending_bytes(top: Any, lines: list[str], removed: list[str], *, full: bool) -> bytes:
    return b"".join(pending_chunks(top, [shard_bytes(lines)] if lines else [], len(lines), removed, full=full))


def pending_chunks(top: Any, chunks: Iterable[bytes], count: int, removed: list[str], *, full: bool
                    ) -> Iterator[bytes]:
    """The commit record: a first line `{"kind", "full", "top", "removed", "lines": count}`, then the
    `count` lead lines, one a line as in a shard. `chunks`: those lines, encoded, each group ending with
    a newline: a shard's bytes are a chunk, so a full record costs no encoding of its own, and its
    lines are never held whole in memory twice."""
    header = {"kind": "reconcile-state-commit", "full": full, "top": json.loads(top.to_bytes()),
              "removed": removed, "lines": count}
    yield (compact_json(header) + "\n").encode("utf-8")
    yield from chunks
