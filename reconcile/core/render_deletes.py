"""How plans show deletions: `- delete lead 1000042 (left@example.com, leads/people.yaml:12)` in red,
counted apart, first of all in Markdown inside a warning; and tombstones with nothing to do."""

from __future__ import annotations

from reconcile.core.model import ABSENT, DELETE, Action, Plan
from reconcile.core.safetext import visible

WARNING = ("Deletion cannot be undone: the lead's activity history goes with it. Apply asks again before "
           "deleting, unless --allow-delete is given.")


def delete_line(action: Action) -> str:
    """The line of one deletion, without colour."""
    lead_id = str(action.known_lead_id) if action.known_lead_id is not None else "(no lead ID recorded)"
    lead = action.lead
    if lead is None:  # an orphan deleted on request
        return f"- delete lead {lead_id} ({visible(action.identity)}, no longer declared)"
    name = lead.email if lead.email is not None else action.identity
    return f"- delete lead {lead_id} ({visible(name)}, {visible(lead.location)})"


def absent_line(action: Action) -> str:
    where = f" ({visible(action.lead.location)})" if action.lead is not None else ""
    return f"# {visible(action.identity)}{where} is already absent: nothing to delete"


def lines(action: Action, paint, red: str, dim: str) -> list[str]:
    if action.kind == DELETE:
        return [paint(red, delete_line(action))]
    if action.kind == ABSENT:
        return [paint(dim, absent_line(action))]
    return []


def summary_phrase(plan: Plan) -> str:
    """`1 to delete, ` / `2 already absent, ` (each only when the plan has some)."""
    deletes, absent = plan.count(DELETE), plan.count(ABSENT)
    return (f"{deletes} to delete, " if deletes else "") + (f"{absent} already absent, " if absent else "")


def compact_line(action: Action) -> str:
    if action.kind == DELETE:
        lead_id = f" (leadId {action.known_lead_id})" if action.known_lead_id is not None else ""
        return f"- delete {visible(action.identity)}{lead_id}"
    return f"= {visible(action.identity)} already absent"


def markdown_block(plan: Plan, fence_for) -> list[str]:
    """The deletions, first in the Markdown plan: a warning, then every one of them."""
    deletes = [action for action in plan.actions if action.kind == DELETE]
    if not deletes:
        return []
    count = len(deletes)
    body = "\n".join(delete_line(action) for action in deletes)
    fence = fence_for(body)
    return ["> [!WARNING]", f"> **{count} lead{'' if count == 1 else 's'} will be deleted from Marketo.** "
            f"{WARNING}", "", f"{fence}diff", body, fence, ""]
