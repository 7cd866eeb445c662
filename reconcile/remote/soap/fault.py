"""The SOAP fault as an error: what Marketo's mktows answered instead of a result."""

from __future__ import annotations

from reconcile.errors import RemoteError


class SoapFault(RemoteError):
    """A SOAP fault from Marketo, carrying the mktows error code (e.g. "20014")."""

    def __init__(self, code: str | None, message: str, faultcode: str = "", http_status: int | None = None):
        text = f"Marketo fault {code}: {message}" if code else f"SOAP fault: {message}"
        super().__init__(text, code=code)
        self.fault_message = message
        self.faultcode = faultcode
        self.http_status = http_status
