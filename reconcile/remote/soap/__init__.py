"""Marketo SOAP: syncMultipleLeads envelopes, fault codes and the transport."""
