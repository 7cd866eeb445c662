"""A text plan too long to read whole. Above LARGE_PLAN_ACTIONS actions it starts with the summary and
the counts per file, shows a sample of each kind, and says how to see every action; saved plans, JSON,
the compact and Markdown forms stay complete. Actions are shown by file, and within a file in natural
order (user2 before user10), whatever their number.
"""

from __future__ import annotations

import re
from typing import Sequence

from reconcile.core.model import CREATE, ORPHANED, UPDATE, Action
from reconcile.core.safetext import visible

LARGE_PLAN_ACTIONS = 1_000
SAMPLE_PER_KIND = 10
FULL_HINT = "`reconcile plan --full` shows every action"

_DIGITS = re.compile(r"(\d+)")
_KIND_ORDER = {CREATE: 0, UPDATE: 1, ORPHANED: 2}
_TITLES = {CREATE: "to create", UPDATE: "to update", ORPHANED: "orphaned"}
NOT_DECLARED = "(no longer declared)"


def natural_key(text: str) -> tuple:
    """`user2` before `user10`: runs of digits compare as numbers, the rest as text; the text itself
    breaks ties (`user02` and `user2`)."""
    parts = _DIGITS.split(text)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), text


def _file_of(action: Action) -> str:
    return action.lead.location.file if action.lead is not None else ""


def display_order(actions: Sequence[Action]) -> list[Action]:
    """Kind by kind (creates, updates, orphans), then by file, then naturally by identity."""
    return sorted(actions, key=lambda a: (_KIND_ORDER.get(a.kind, 3), a.lead is None, _file_of(a),
                                          natural_key(a.identity)))


def is_large(actions: Sequence[Action]) -> bool:
    return len(actions) > LARGE_PLAN_ACTIONS


def sample(actions: Sequence[Action]) -> list[Action]:
    """The first SAMPLE_PER_KIND actions of each kind, in display order."""
    shown: list[Action] = []
    taken: dict[str, int] = {}
    for action in display_order(actions):
        if taken.get(action.kind, 0) < SAMPLE_PER_KIND:
            taken[action.kind] = taken.get(action.kind, 0) + 1
            shown.append(action)
    return shown


def overview_lines(actions: Sequence[Action]) -> list[str]:
    """The counts per file (file names made visible), and what the sample below them is."""
    counts: dict[str, dict[str, int]] = {}
    for action in actions:
        per_kind = counts.setdefault(_file_of(action), {})
        per_kind[action.kind] = per_kind.get(action.kind, 0) + 1
    lines = ["", f"{len(actions):,} actions, by file:"]
    for name in sorted(counts, key=lambda file: (file == "", natural_key(file))):
        parts = ", ".join(f"{counts[name][kind]:,} {_TITLES[kind]}" for kind in _KIND_ORDER if kind in counts[name])
        lines.append(f"  {visible(name) if name else NOT_DECLARED}: {parts}")
    lines += ["", f"Too many to show each one: the first {SAMPLE_PER_KIND} of each kind follow; {FULL_HINT}."]
    return lines


def hidden_line(total: int, shown: int) -> str:
    return f"  ... and {total - shown:,} more actions not shown: {FULL_HINT}."
