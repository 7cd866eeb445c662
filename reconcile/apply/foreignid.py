"""Which planned leads send a foreign ID, and what to say when the REST API has nowhere to put it.

Marketo's REST API has no foreignSysPersonId: a custom lead field carries it (--foreign-id-field).
`plan` says so before `apply` would refuse, naming the leads and how to name the field.
"""

from __future__ import annotations

from reconcile.apply.batches import record_for
from reconcile.core.model import UNCHANGED, Lead, Plan

SHOWN = 3  # leads named in a note; the rest are counted


def foreign_id_leads(plan: Plan) -> list[Lead]:
    """The declared leads whose record carries a foreign ID (those keyed by a lead ID do not), in file
    and line order."""
    return sorted((a.lead for a in plan.actions
            if a.kind != UNCHANGED and a.sends_record and a.lead is not None
            and a.lead.foreign_sys_person_id is not None and record_for(a).foreign_sys_person_id is not None),
                  key=lambda lead: (lead.location.file, lead.location.line or 0))


def where(leads: list[Lead]) -> str:
    """`leads/crm/a.yaml:4, leads/crm/a.yaml:12 and 3 more`."""
    shown = ", ".join(str(lead.location) for lead in leads[:SHOWN])
    return shown + (f" and {len(leads) - SHOWN} more" if len(leads) > SHOWN else "")


def missing_field_note(leads: list[Lead], field: str | None, problem: str | None) -> str | None:
    """What plan says when apply through REST would refuse these leads: no field named (`field` None),
    or a field the instance does not have (`problem`, from its cached Describe). None: nothing to say."""
    if not leads or (field is not None and problem is None):
        return None
    count = f"{len(leads)} lead{'' if len(leads) == 1 else 's'} keyed by foreignSysPersonId ({where(leads)})"
    if field is None:
        return (f"Apply through REST would refuse {count}: Marketo's REST API has no foreignSysPersonId. Name the "
                "custom lead field that carries it with --foreign-id-field NAME or RECONCILE_FOREIGN_ID_FIELD "
                "(`reconcile fields` lists the instance's fields), or apply them with --api soap.")
    return f"Apply through REST would refuse {count}: {problem}."
