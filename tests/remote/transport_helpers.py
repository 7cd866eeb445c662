"""Helpers for the SOAP transport tests: the three environment variables of a valid configuration,
a batch of lead records, and a sleep that records the backoff delays instead of waiting.
"""

from __future__ import annotations

from reconcile.remote.soap import envelope as soap

ENV = {"MARKETO_SOAP_ENDPOINT": "https://123-ABC-456.mktoapi.com/soap/mktows/2_1",
       "MARKETO_USER_ID": "user_1", "MARKETO_ENCRYPTION_KEY": "s3cr3t-key-value-123"}


def records(n, prefix="t"):
    return [soap.LeadRecord(email=f"{prefix}{i}@example.com", attributes=(("FirstName", f"F{i}"),))
            for i in range(n)]


class FakeSleep:
    """Records backoff delays; runs `then` after the first pause (e.g. to clear injected faults)."""

    def __init__(self, then=None):
        self.delays = []
        self.then = then

    def __call__(self, seconds):
        self.delays.append(seconds)
        if self.then is not None and len(self.delays) == 1:
            self.then()
