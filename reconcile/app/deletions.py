"""Deletion for plan and apply: tombstones and (on request) orphans become deletes, refused where the
transport cannot delete, bounded by --max-deletes, and asked about again unless --allow-delete."""

from __future__ import annotations

from reconcile.app.session import Session
from reconcile.core.model import DELETE, ORPHANED
from reconcile.core.safetext import visible
from reconcile.errors import InputError, UsageError

_LISTED = 20  # orphans named in a refusal


def plan_deletions(plan, api: str, delete_orphans: bool, max_deletes: int, forget_orphans: bool = False):
    """`plan` with its orphans deleted when asked (at most `max_deletes` of them), checked against what
    the transport can do."""
    from reconcile.core.planner import delete_orphans as deleting_orphans

    if delete_orphans:
        if forget_orphans:
            raise UsageError("--delete-orphans and --forget-orphans cannot be combined: choose whether the "
                             "leads no lead file declares are deleted from Marketo or only forgotten")
        orphans = [action for action in plan.actions if action.kind == ORPHANED]
        if len(orphans) > max_deletes:
            named = ", ".join(f"{visible(a.identity)} (leadId {a.known_lead_id})" for a in orphans[:_LISTED])
            more = f" and {len(orphans) - _LISTED} more" if len(orphans) > _LISTED else ""
            raise UsageError(f"--delete-orphans would delete {len(orphans)} lead(s), more than --max-deletes "
                             f"{max_deletes} allows; nothing was sent. They are: {named}{more}. Raise "
                             "--max-deletes to at least that many to delete them, or declare them again")
        plan = deleting_orphans(plan)
    refuse_without_delete_call(plan, api)
    return plan


def refuse_without_delete_call(plan, api: str) -> None:
    """Exit 3 when the plan deletes and the transport has no call for it (SOAP)."""
    from reconcile.remote import registry

    deletes = [action for action in plan.actions if action.kind == DELETE]
    if not deletes or registry.get(api).can_delete:
        return
    first = next((action for action in deletes if action.lead is not None), None)
    raise InputError(f"{api.upper()} has no call that deletes a lead, and the plan deletes {len(deletes)}: "
                     "apply tombstones (deleted: true) with --api rest", first.lead.location if first else None)


def confirm_deletions(session: Session, plan, allow_delete: bool) -> bool:
    """Ask once more before deleting (even when other changes are auto-approved), unless allowed."""
    count = plan.count(DELETE)
    if not count or allow_delete:
        return True
    question = (f"Delete {count} lead(s) from Marketo? This cannot be undone: each lead's activity history "
                "goes with it.")
    try:
        return session.confirm(question)
    except UsageError:
        raise UsageError(f"apply would delete {count} lead(s) from Marketo and cannot ask: stdin is not "
                         "interactive. Nothing was sent. Review the plan, then pass --allow-delete") from None
