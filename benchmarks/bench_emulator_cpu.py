"""(e) The emulator's CPU per 300-record call, SOAP syncMultipleLeads and REST Sync Leads (target: 20 ms).

    python benchmarks/bench_emulator_cpu.py [CALLS=40]

Two measurements of the same pre-built, signed envelopes (300 creates by email, 4 attributes each):
in-process, `time.process_time()` around the SOAP face's work (parse + XSD check, signature, the
store, the answer); and as a process, the CPU time `reconcile emulator` spends (from /proc, Linux)
while answering them over HTTP. The client's own cost is excluded from both. The same 300 creates
as one REST Sync Leads body are measured in-process too (JSON in, the rules, JSON out).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

from reconcile.core.records import LeadRecord, SyncStatus
from reconcile.emulator import Emulator, EmulatorConfig, rest_rules, soap_api
from reconcile.remote.soap import envelope

USER, KEY = "bench-user", "bench-key-not-secret"


def envelopes(count: int) -> list[bytes]:
    stamp = envelope.w3c_timestamp(datetime.now(timezone.utc))
    return [envelope.build_request(
        [LeadRecord(email=f"l{i}-{j}@example.com", attributes=(("FirstName", f"F{j}"), ("LastName", "L"),
                                                              ("Company", "Acme"), ("Title", "VP")))
         for j in range(300)], user_id=USER, encryption_key=KEY, timestamp=stamp) for i in range(count)]


def in_process(bodies: list[bytes]) -> float:
    emulator = Emulator(EmulatorConfig(user_id=USER, encryption_key=KEY))

    def serve(body: bytes) -> bytes:
        request = soap_api.parse_request(body)
        assert emulator.soap._authentic(request.header)
        outcomes = emulator.store.sync(request.records, request.dedup_enabled)
        return soap_api.build_response([SyncStatus(o.lead_id, o.status, o.error) for o in outcomes])

    serve(bodies[0])  # compiles the XSD
    started = time.process_time()
    for body in bodies[1:]:
        serve(body)
    return (time.process_time() - started) / (len(bodies) - 1)


def rest_in_process(count: int) -> float:
    emulator = Emulator(EmulatorConfig())
    bodies = [json.dumps({"action": "createOrUpdate", "lookupField": "email", "input": [
        {"email": f"l{i}-{j}@example.com", "firstName": f"F{j}", "lastName": "L", "company": "Acme", "title": "VP"}
        for j in range(300)]}).encode() for i in range(count)]

    def serve(body: bytes) -> bytes:
        document = json.loads(body)
        with emulator.store.transaction() as tx:
            result = rest_rules.sync(tx, emulator.fields, document["action"], document["lookupField"],
                                     document["input"])
        return json.dumps({"requestId": "1#0", "success": True, "result": result}).encode()

    started = time.process_time()
    for body in bodies:
        serve(body)
    return (time.process_time() - started) / len(bodies)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def as_process(bodies: list[bytes]) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "reconcile", "emulator", "--port", str(port), "--user-id",
                                USER], env={**os.environ, "MARKETO_ENCRYPTION_KEY": KEY},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", "/_emulator/leads")
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        def post(body: bytes) -> None:
            connection.request("POST", "/soap/mktows/2_1", body, {"Content-Type": envelope.CONTENT_TYPE})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, answer.status

        post(bodies[0])
        before = _cpu_seconds(process.pid)
        for body in bodies[1:]:
            post(body)
        return (_cpu_seconds(process.pid) - before) / (len(bodies) - 1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    bodies = envelopes(calls + 1)
    print(f"emulator CPU per 300-record SOAP call, in-process: {in_process(bodies) * 1000:.1f} ms")
    print(f"emulator CPU per 300-record REST Sync Leads call, in-process: {rest_in_process(calls) * 1000:.1f} ms")
    if sys.platform.startswith("linux"):
        print(f"emulator CPU per 300-record SOAP call, as a process over HTTP: {as_process(bodies) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
