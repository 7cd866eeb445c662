"""Helpers for the applier tests: a declared lead, what `reconcile apply` does under its lock
(recover, plan against the state, apply), and the records a recording session sent.
"""

from __future__ import annotations

from reconcile.emulator import soap_api
from reconcile.apply import apply_plan, recover_state
from reconcile.errors import Location
from reconcile.core.model import Lead
from reconcile.core.planner import plan as make_plan


def lead(n=1, **fields):
    attributes = fields.pop("attributes", {})
    return Lead(location=Location("leads/x.yaml", n), attributes=attributes, **fields)


def run_apply(leads, state_path, transport, **kwargs):
    """What `reconcile apply` does under its lock: recover, plan against the state, apply."""
    state, _ = recover_state(state_path)
    return apply_plan(make_plan(leads, state), state, state_path, transport, **kwargs)


def sent_records(session):
    return [list(soap_api.parse_request(body).records) for body in session.bodies]
