"""What the SOAP transport is, for the registry: declared here, without importing the transport."""

from reconcile.remote.base import TransportInfo

SOAP_VARIABLES = ("MARKETO_SOAP_ENDPOINT", "MARKETO_USER_ID", "MARKETO_ENCRYPTION_KEY")

TRANSPORT = TransportInfo(
    name="soap", call_name="syncMultipleLeads",
    max_records=300,  # syncMultipleLeads takes at most 300 leadRecords
    can_lists=True,  # listOperation ADDTOLIST / REMOVEFROMLIST, by list name
    credential_variables=SOAP_VARIABLES, variable_prefixes=("MARKETO_SOAP", "MARKETO_USER_ID", "MARKETO_ENCRYPTION"))

