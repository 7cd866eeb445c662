"""How plans show static list memberships: `+ list "VIP Customers"` / `- list "VIP Customers"` under
the lead, and the counts in the summary. Pure functions of the plan's actions."""

from __future__ import annotations

from typing import Any, Callable

from reconcile.core.model import Action, ListChange, Plan

LIST_ADDITIONS = "list_additions"
LIST_REMOVALS = "list_removals"


def list_lines(action: Action, quote: Callable[[str], str]) -> list[str]:
    """The lead's list changes as diff lines, removals first, without colour."""
    return [f"    {'+' if change.add else '-'} list {quote(change.ref)}" for change in action.list_changes]


def with_list_lines(block: str, action: Action, quote: Callable[[str], str], paint, green: str, red: str) -> str:
    """A lead's block (ending with its closing `}` line) with its list lines put before that line."""
    head, newline, closing = block.rpartition("\n")
    indent = closing[:len(closing) - len(closing.lstrip(" ")) - 2]  # the closing `}` is indented 2 more
    shown = [paint(green if change.add else red, indent + line)
             for change, line in zip(action.list_changes, list_lines(action, quote))]
    return head + newline + "\n".join(shown) + newline + closing


def compact_parts(action: Action, quote: Callable[[str], str]) -> list[str]:
    return [f"list {'+' if change.add else '-'}{quote(change.ref)}" for change in action.list_changes]


def counts_phrase(plan: Plan) -> str:
    """`3 list additions, 1 removal`, or "" when the plan changes no membership."""
    additions, removals = plan.list_additions, plan.list_removals
    if not additions and not removals:
        return ""
    return (f"{additions} list addition{'' if additions == 1 else 's'}, "
            f"{removals} removal{'' if removals == 1 else 's'}")


def summary_counts(plan: Plan) -> dict[str, int]:
    """The counts JSON adds to `summary`, when the plan changes memberships."""
    if not plan.has_list_changes:
        return {}
    return {LIST_ADDITIONS: plan.list_additions, LIST_REMOVALS: plan.list_removals}


def change_to_json(change: ListChange) -> dict[str, Any]:
    return {"list": change.ref, "change": "add" if change.add else "remove", "list_id": change.list_id}


def markdown_cells(plan: Plan) -> tuple[str, str, str]:
    """The Markdown summary table's extra column (head, rule, cell), when memberships change."""
    if not plan.has_list_changes:
        return "", "", ""
    return "Lists (+/-) | ", "---:|", f"+{plan.list_additions} / -{plan.list_removals} | "
