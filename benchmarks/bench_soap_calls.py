"""Client CPU per 300-record SOAP call: building (and validating, and signing) the envelope, and
parsing the answer. Seconds of CPU (process time), median of N runs, single thread.

    python benchmarks/bench_soap_calls.py [--runs N] [--records 300]

The build is split into its parts so the cost of xmlschema's validation, which every envelope
must pass before it is sent, shows on its own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable


def cpu_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--records", type=int, default=300)
    args = parser.parse_args()

    from xml.etree import ElementTree

    from reconcile.core.records import LeadRecord, SyncStatus
    from reconcile.emulator import soap_api
    from reconcile.remote.soap import envelope as soap
    from reconcile.remote.soap import workers

    workers._worker_credentials.update(user_id="u", encryption_key="k")  # as a worker's start-up sets them

    records = [LeadRecord(email=f"user{i}@example.com", foreign_sys_person_id=f"F{i}", foreign_sys_type="SFDC",
                          attributes=(("FirstName", f"First{i}"), ("LastName", f"Last{i}"), ("Company", "Acme Inc"),
                                      ("Phone", "650-555-1000"), ("Title", None)))
               for i in range(args.records)]
    stamp = "2026-01-01T00:00:00+00:00"
    envelope = soap.build_request(records, user_id="u", encryption_key="k", timestamp=stamp)
    params = ElementTree.fromstring(envelope).find(f"{{{soap.NS_SOAP}}}Body/{{{soap.NS_MKTOWS}}}paramsSyncMultipleLeads")
    schema = soap.compiled_schema()
    answer = soap_api.build_response([SyncStatus(1_000_000 + i, "CREATED", None) for i in range(args.records)])

    rows = [
        ("build_request (build + validate + sign)",
         cpu_ms(lambda: soap.build_request(records, user_id="u", encryption_key="k", timestamp=stamp), args.runs)),
        ("build_request as a worker runs it (collector paused)",
         cpu_ms(lambda: workers._build(records, stamp, True), args.runs)),
        ("  of which: re-read the bytes (ElementTree)", cpu_ms(lambda: ElementTree.fromstring(envelope), args.runs)),
        ("  of which: xmlschema validation of the body",
         cpu_ms(lambda: next(schema.iter_errors(params, use_location_hints=False), None), args.runs)),
        ("parse_response (parse + validate + statuses)", cpu_ms(lambda: soap.parse_response(answer), args.runs)),
    ]
    print(f"CPU per {args.records}-record call, median of {args.runs} runs:")
    for name, ms in rows:
        print(f"  {name:<56} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
