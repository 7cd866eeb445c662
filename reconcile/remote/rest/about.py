"""What the REST transport is, for the registry: declared here, without importing the transport."""

from reconcile.remote.base import TransportInfo
from reconcile.remote.rest import payload
from reconcile.remote.rest.config import REST_VARIABLES

TRANSPORT = TransportInfo(
    name="rest", call_name="Sync Leads",
    max_records=300,  # Sync Leads takes at most 300 records in `input`
    max_call_bytes=payload.MAX_CALL_BYTES - payload.ENVELOPE_BYTES,
    can_delete=True, can_lists=True, can_read=True, credential_variables=REST_VARIABLES,
    group_of=payload.group_of)  # one action and lookup field per call
