"""What the REST transport is, for the registry: declared here, without importing the transport."""

from reconcile.remote.base import TransportInfo
from reconcile.remote.rest import payload
from reconcile.remote.rest.config import REST_VARIABLES


def _plan_sizes(foreign_id_field: str | None):
    """Records sized with their lead-file names standing in for the REST names (about as long)."""
    names = payload.names_as_written(foreign_id_field)
    return (lambda record: payload.size_of(record, names),
            lambda record: payload.size_bound_as_written(record, names))


TRANSPORT = TransportInfo(
    name="rest", call_name="Sync Leads",
    max_records=300,  # Sync Leads takes at most 300 records in `input`
    max_call_bytes=payload.MAX_CALL_BYTES - payload.ENVELOPE_BYTES,
    can_delete=True, can_lists=True, can_read=True, credential_variables=REST_VARIABLES,
    variable_prefixes=("MARKETO_REST", "MARKETO_CLIENT"),
    group_of=payload.group_of,  # one action and lookup field per call
    plan_sizes=_plan_sizes)
