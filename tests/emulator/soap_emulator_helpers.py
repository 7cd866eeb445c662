"""Helpers for the SOAP emulator tests: a minimal client built on reconcile.remote.soap.envelope (the
same code the real client uses) that builds a signed syncMultipleLeads envelope, posts it and reads
the statuses or the fault code back; a request with its dedupEnabled cut out; the emulator's leads by
ID; the leads a database on disk holds; and a clock the tests move by hand.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import requests

from reconcile.remote.soap import envelope as soap
from reconcile.emulator.store import LeadStore
from reconcile.remote.soap.fault import SoapFault

R = soap.LeadRecord


# --------------------------------------------------------------------------------------------------
# A minimal client, built on reconcile.remote.soap.envelope (the same code the real client uses)


def envelope(emu, records, *, dedup=True, user_id=None, key=None, timestamp=None, now=None):
    stamp = timestamp if timestamp is not None else soap.w3c_timestamp(now or emu.config.now())
    return soap.build_request(list(records), user_id=user_id or emu.user_id,
                              encryption_key=key or emu.encryption_key, timestamp=stamp,
                              dedup_enabled=dedup)


def post(emu, body: bytes, timeout: float = 10.0) -> requests.Response:
    return requests.post(emu.endpoint, data=body, timeout=timeout,
                         headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": soap.SOAP_ACTION})


def sync(emu, records, **kwargs) -> list[soap.SyncStatus]:
    response = post(emu, envelope(emu, records, **kwargs))
    return soap.parse_response(response.content, response.status_code)


def fault_code(emu, body: bytes) -> str:
    response = post(emu, body)
    assert response.status_code == 500, response.text
    with pytest.raises(SoapFault) as info:
        soap.parse_response(response.content, response.status_code)
    return info.value.code


def sync_fault(emu, records, **kwargs) -> str:
    return fault_code(emu, envelope(emu, records, **kwargs))


def one_lead_outcomes(emu, emails) -> list[str]:
    """One call per email, each syncing that one lead: its status, or the call's fault code."""
    outcomes = []
    for email in emails:
        try:
            outcomes.append(sync(emu, [R(email=email)])[0].status)
        except SoapFault as fault:
            outcomes.append(fault.code)
    return outcomes


def without_dedup(body: bytes) -> bytes:
    stripped = re.sub(rb"<dedupEnabled>[^<]*</dedupEnabled>\s*", b"", body)
    assert stripped != body
    return stripped


def by_id(emu) -> dict[int, dict]:
    return {lead["id"]: lead for lead in emu.leads()}


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def persisted(db):
    """The leads a database on disk holds, as a restarted emulator would load them."""
    return LeadStore(fields=frozenset(), path=db).leads()
