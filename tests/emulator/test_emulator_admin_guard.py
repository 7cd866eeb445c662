"""The emulator's admin endpoints (`/_emulator/...`) have no credentials, so they answer only what a
web page in the user's browser cannot send: a loopback Host, no foreign Origin, and for a POST a JSON
body. Anything else (a cross-site form post, a page whose host name resolves to 127.0.0.1) is refused
and changes nothing.
"""

from __future__ import annotations

import http.client
import json

import pytest


def admin_request(emulator, method: str, path: str, *, host: str | None = None, origin: str | None = None,
                  content_type: str | None = "application/json", body: object = None) -> tuple[int, dict]:
    """Send one request to the emulator with exactly these headers; (status, JSON answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{emulator.port}")
        if origin is not None:
            connection.putheader("Origin", origin)
        if data is not None:
            if content_type is not None:
                connection.putheader("Content-Type", content_type)
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


@pytest.fixture
def lead(emulator) -> int:
    with emulator.store.transaction() as tx:
        created = tx.create()
        tx.set_email(created, "ada@example.com")
        tx.set_attribute(created, "Title", "Countess")
        return created["id"]


def title_of(emulator, lead_id: int) -> str | None:
    return {lead["id"]: lead for lead in emulator.leads()}[lead_id]["attributes"].get("Title")


def test_a_cross_site_text_plain_post_is_refused_and_changes_nothing(emulator, lead: int) -> None:
    status, answer = admin_request(emulator, "POST", f"/_emulator/leads/{lead}", host="evil.example",
                                   origin="http://evil.example", content_type="text/plain", body={"Title": "x"})
    assert status == 403, answer
    assert title_of(emulator, lead) == "Countess"
    assert not [call for call in emulator.calls if call.api == "admin"], "not served, so not an admin call"


REFUSED = {
    # a page on evil.example whose name now resolves to 127.0.0.1 (DNS rebinding): its own Host
    "a foreign Host, JSON body": dict(host="evil.example:8080"),
    "a foreign Host with no port": dict(host="evil.example"),
    "a loopback address under another name": dict(host="127.0.0.1.evil.example"),
    "no Host at all": dict(host=""),
    "a loopback Host, a foreign Origin": dict(origin="https://evil.example"),
    "a loopback Host, a sandboxed page's Origin": dict(origin="null"),
    "a loopback Host, a text/plain body": dict(content_type="text/plain"),
    "a loopback Host, a form body": dict(content_type="application/x-www-form-urlencoded"),
    "a loopback Host, no Content-Type": dict(content_type=None),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_edit_a_browser_page_could_send_is_refused(emulator, lead: int, name: str) -> None:
    status, answer = admin_request(emulator, "POST", f"/_emulator/leads/{lead}", body={"Title": "x"},
                                   **REFUSED[name])
    assert status in (403, 415) and "error" in answer, (status, answer)
    assert title_of(emulator, lead) == "Countess"


@pytest.mark.parametrize("method, path, body", [("GET", "/_emulator/leads", None),
                                                ("DELETE", "/_emulator/leads/{lead}", None),
                                                ("POST", "/_emulator/merge", {"winner": 1, "loser": 2})])
def test_every_admin_endpoint_refuses_a_foreign_host(emulator, lead: int, method: str, path: str, body) -> None:
    status, _ = admin_request(emulator, method, path.format(lead=lead), host="evil.example", body=body)
    assert status == 403
    assert len(emulator.leads()) == 1


@pytest.mark.parametrize("host, origin, content_type", [
    ("127.0.0.1:{port}", None, "application/json"),
    ("localhost:{port}", "http://localhost:{port}", "application/json; charset=utf-8"),
    ("[::1]:{port}", "http://[::1]:{port}", "application/json"),
    ("LOCALHOST", None, "Application/JSON"),
])
def test_loopback_requests_with_json_bodies_are_served(emulator, lead: int, host: str, origin, content_type) -> None:
    port = emulator.port
    status, answer = admin_request(emulator, "POST", f"/_emulator/leads/{lead}", host=host.format(port=port),
                                   origin=origin.format(port=port) if origin else None, content_type=content_type,
                                   body={"Title": "CTO"})
    assert status == 200, answer
    assert title_of(emulator, lead) == "CTO"
    status, listing = admin_request(emulator, "GET", "/_emulator/leads", host=host.format(port=port))
    assert status == 200 and [entry["id"] for entry in listing] == [lead]
