"""What the SOAP envelope code costs: importing it loads no XML library, concurrent builds agree, a
full batch of 300 leads builds and parses in reasonable time, and threads racing to the shared XSD
validator compile it once.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time

from reconcile.emulator import soap_api
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.envelope import LeadRecord, SyncStatus
from soap_samples import TEST_TIMESTAMP

# ----------------------------------------------------------------------------- cost and concurrency


def _big_batch() -> list[LeadRecord]:
    return [LeadRecord(email=f"lead{i}@example.com",
                       attributes=tuple((f"Attribute{j}", f"value {i}-{j}") for j in range(7)))
            for i in range(300)]


def test_importing_soap_does_not_import_lxml_or_xmlschema():
    code = ("import sys, reconcile.remote.soap.envelope; "
            "bad = [m for m in ('lxml', 'lxml.etree', 'xmlschema', 'zeep') if m in sys.modules]; "
            "sys.exit(', '.join(bad) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_concurrent_builds_agree():
    batch = _big_batch()[:50]
    expected = soap.build_request(batch, user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: soap.build_request(batch, user_id="u", encryption_key="k",
                                                             timestamp=TEST_TIMESTAMP), range(8)))
    assert all(result == expected for result in results)


def test_full_batch_builds_and_parses_in_reasonable_time():
    batch = _big_batch()
    soap.build_request(batch[:1], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)  # warm the schema
    started = time.perf_counter()
    envelope = soap.build_request(batch, user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    build_seconds = time.perf_counter() - started
    response = soap_api.build_response([SyncStatus(1000 + i, "CREATED", None) for i in range(300)])
    started = time.perf_counter()
    statuses = soap.parse_response(response)
    parse_seconds = time.perf_counter() - started
    assert len(soap_api.parse_request(envelope).records) == 300
    assert [s.lead_id for s in statuses] == list(range(1000, 1300))
    # Generous bounds (typically ~0.08 s and ~0.02 s): catch pathological regressions, not noise.
    assert build_seconds < 2.0 and parse_seconds < 1.0


def test_the_shared_validator_is_compiled_once_when_threads_race_to_it(monkeypatch):
    # libxml2 fails with "Internal error: xmlSchemaPValAttrNodeValue" about one time in ten when two
    # threads compile the XSD at once, as the first calls of a concurrent apply did. A slow stand-in
    # for the compile makes the race certain: only one compile may ever run.
    from reconcile.remote.soap import wire

    compiles, running, overlap = [], [0], [0]

    class SlowCompile:
        def __init__(self):
            running[0] += 1
            overlap[0] = max(overlap[0], running[0])
            time.sleep(0.05)
            compiles.append(self)
            running[0] -= 1

    monkeypatch.setattr(wire, "XsdValidator", SlowCompile)
    monkeypatch.setattr(wire, "_shared", [])
    barrier = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    with barrier:
        results = list(barrier.map(lambda _: wire.shared_validator(), range(8)))
    assert len(compiles) == 1 and overlap[0] == 1
    assert all(result is compiles[0] for result in results)
