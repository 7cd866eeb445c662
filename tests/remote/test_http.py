"""remote/http/: the wire-neutral retry loop, HTTP status classification, URL redaction."""

from __future__ import annotations

import re
import threading

import pytest

from reconcile.errors import ConfigError, TransportError
from reconcile.remote import http
from reconcile.remote.base import NotDelivered, OutcomeUnknown, outcome_unknown
from reconcile.remote.codes import Handling


class Boom(Exception):
    pass


def run(outcomes, *, resend_safe=True, policy=None, stop=None, classify=None):
    """Call the loop with an attempt that raises Failures of the given handlings, then returns "ok"."""
    calls, sleeps, retries = [], [], []
    outcomes = list(outcomes)

    def attempt(n):
        calls.append(n)
        if outcomes:
            handling = outcomes.pop(0)
            if isinstance(handling, BaseException):
                raise handling
            raise http.Failure(TransportError(f"failed with {handling.value}"), handling, handling.value)
        return "ok"

    result = http.call_with_retries(attempt, classify or (lambda exc: None),
                                    policy=policy or http.RetryPolicy(base_delay=0.01, max_delay=0.01),
                                    resend_safe=resend_safe, stop=stop, on_retry=retries.append,
                                    sleep=sleeps.append, uniform=lambda low, high: high)
    return result, calls, sleeps, retries


def test_retry_backs_off_and_reports_each_retry():
    result, calls, sleeps, retries = run([Handling.RETRY, Handling.THROTTLED])
    assert result == "ok" and calls == [1, 2, 3] and len(sleeps) == 2
    assert [r.reason for r in retries] == ["retry", "throttled"]
    assert not any(r.outcome_unknown for r in retries)


def test_unknown_is_resent_only_when_safe():
    assert run([Handling.UNKNOWN])[0] == "ok"
    with pytest.raises(OutcomeUnknown, match="not resent") as info:
        run([Handling.UNKNOWN], resend_safe=False)
    assert outcome_unknown(info.value)


def test_resign_is_immediate_and_bounded():
    result, calls, sleeps, _ = run([Handling.RESIGN, Handling.RESIGN])
    assert result == "ok" and calls == [1, 2, 3] and sleeps == []
    with pytest.raises(TransportError, match="resign"):
        run([Handling.RESIGN] * 3, policy=http.RetryPolicy(max_resign=2))


@pytest.mark.parametrize("handling", [Handling.STOP, Handling.QUOTA, Handling.RECORD])
def test_stopping_failures_are_not_retried(handling):
    with pytest.raises(TransportError):
        run([handling, Handling.RETRY])


def test_attempts_are_bounded_and_the_final_error_says_so():
    with pytest.raises(TransportError, match=r"gave up after 3 attempts"):
        run([Handling.RETRY] * 5, policy=http.RetryPolicy(max_attempts=3, base_delay=0.01))
    with pytest.raises(TransportError, match=r"gave up after 7 attempts"):
        run([Handling.THROTTLED] * 9, policy=http.RetryPolicy(max_attempts=3, max_throttled_attempts=7,
                                                                base_delay=0.01))


def test_a_failure_once_unknown_stays_unknown():
    with pytest.raises(OutcomeUnknown) as info:
        run([Handling.UNKNOWN, Handling.RETRY, Handling.RETRY], policy=http.RetryPolicy(max_attempts=3, base_delay=0))
    assert outcome_unknown(info.value)


def test_unclassified_exceptions_pass_through_and_classified_ones_are_handled():
    with pytest.raises(Boom):
        run([Boom()])
    classify = lambda exc: http.Failure(exc, Handling.RETRY, "boom") if isinstance(exc, Boom) else None  # noqa: E731
    assert run([Boom()], classify=classify)[0] == "ok"


def test_a_set_stop_event_starts_no_attempt():
    stop = threading.Event()
    stop.set()
    with pytest.raises(NotDelivered):
        run([], stop=stop)


@pytest.mark.parametrize("status,handling", [(429, Handling.THROTTLED), (503, Handling.RETRY), (502, Handling.UNKNOWN),
                                             (500, Handling.UNKNOWN), (404, Handling.STOP), (301, Handling.STOP)])
def test_http_statuses_without_an_api_error(status, handling):
    client = http.HttpClient(endpoint_env="MARKETO_REST_ENDPOINT")
    answer = http.Answer(status, "Reason", b"", {"Retry-After": "7", "Location": "https://u:p@x.example/"})
    failure = client.classify_status(answer, "https://h.example/rest")
    assert failure.handling is handling
    assert "p@" not in str(failure.error)
    if status == 429:
        assert failure.retry_after == 7.0
    if status in (404, 301):
        assert "MARKETO_REST_ENDPOINT" in str(failure.error)
    assert client.classify_status(http.Answer(200, "OK", b"", {}), "https://h.example/rest") is None


def test_redact_url_hides_userinfo_anywhere_in_text():
    assert http.redact_url("https://svc:Pa55word@host.example/x") == "https://***@host.example/x"
    assert "Pa55word" not in http.redact_url("see htps://svc:Pa55word@host/soap and more")
    assert http.redact_url("https://host.example/a@b") == "https://host.example/a@b"


def test_endpoint_errors_never_echo_a_password():
    for endpoint in ("htps://svc:Pa55word@host/soap", "https://svc:Pa55word@host/soap", "http://svc:Pa55word@10.0.0.1/x",
                     "https://svc:Pa55word@host:99999/soap"):
        with pytest.raises(ConfigError) as info:
            http.validate_endpoint(endpoint, "MARKETO_SOAP_ENDPOINT")
        assert "Pa55word" not in str(info.value) and "MARKETO_SOAP_ENDPOINT" in str(info.value)


def test_one_line_shows_control_characters_escaped():
    assert http.one_line("OK\r\n::add-mask::x\x1b") == "OK\\r\\n::add-mask::x\\x1b"


# -- one deadline per attempt ---------------------------------------------------------------------


HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 30\r\n"
           b"Connection: close\r\n\r\n")


class Trickler:
    """A loopback HTTP server that answers every request one byte per `interval` seconds.

    `fast_prefix` bytes of the answer are sent at once (e.g. the headers, to trickle only the body)."""

    def __init__(self, answer: bytes, fast_prefix: int = 0, interval: float = 1.0):
        import socket as socket_module

        self.answer, self.fast_prefix, self.interval = answer, fast_prefix, interval
        self.done = threading.Event()
        self.listener = socket_module.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}/soap/mktows/2_1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(self.answer[: self.fast_prefix])
                for byte in self.answer[self.fast_prefix:]:
                    if self.done.wait(self.interval):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self):
        self.done.set()
        self.listener.close()


@pytest.fixture
def trickler():
    made = []

    def make(*args, **kwargs):
        server = Trickler(*args, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("trickled", ["headers", "body"])
def test_one_deadline_covers_headers_and_body_of_an_attempt(trickler, trickled):
    import time

    server = trickler(HEADERS + b"x" * 30, fast_prefix=0 if trickled == "headers" else len(HEADERS))
    client = http.HttpClient(endpoint_env="MARKETO_SOAP_ENDPOINT", timeout=(5.0, 5.0), deadline=2.0)
    began = time.monotonic()
    with pytest.raises(http.Failure) as info:
        client.exchange("POST", server.endpoint, body=b"<x/>")
    elapsed = time.monotonic() - began
    client.close()
    assert 1.9 <= elapsed < 3.5, elapsed
    failure = info.value
    assert failure.handling is Handling.UNKNOWN and failure.reason == "deadline passed"
    assert isinstance(failure.error, OutcomeUnknown) and "within 2 s" in str(failure.error)
    assert client.stats.attempts == 1


# -- connection failures: one plain line ----------------------------------------------------------


def _refused_endpoint():
    import socket as socket_module

    with socket_module.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/soap/mktows/2_1", port


def _soap_transport(endpoint, **kwargs):
    from reconcile.remote.soap.transport import Credentials, SoapTransport

    sleeps = []
    kwargs.setdefault("retry", http.RetryPolicy(max_attempts=3, base_delay=0.01))
    return SoapTransport(Credentials(endpoint, "u", "k"), sleep=sleeps.append, **kwargs), sleeps


def _one_record():
    from reconcile.core.records import LeadRecord

    return [LeadRecord(email="a@example.com")]


def test_connection_refused_is_one_plain_line_naming_the_setting():
    endpoint, port = _refused_endpoint()
    transport, sleeps = _soap_transport(endpoint)
    with pytest.raises(NotDelivered) as info:
        transport.send(_one_record())
    # nothing listens on this machine's port: waiting will not start it, so it is tried once
    assert str(info.value) == (f"could not connect to 127.0.0.1:{port} (connection refused); "
                               "check MARKETO_SOAP_ENDPOINT (gave up after 1 attempt)")
    assert len(sleeps) == 0
    assert transport.stats.attempts == 0  # nothing reached a server: no call was made


def test_an_unknown_host_is_retried_once():
    transport, sleeps = _soap_transport("https://no-such-host.invalid/soap/mktows/2_1",
                                        retry=http.RetryPolicy(max_attempts=6, base_delay=0.01))
    with pytest.raises(NotDelivered) as info:
        transport.send(_one_record())
    assert str(info.value).startswith("could not connect to no-such-host.invalid:443 (host name not found); "
                                      "check MARKETO_SOAP_ENDPOINT")
    assert len(sleeps) == 1


def test_the_rest_transport_names_its_own_setting():
    endpoint, port = _refused_endpoint()
    client = http.HttpClient(endpoint_env="MARKETO_REST_ENDPOINT")
    with pytest.raises(http.Failure) as info:
        client.exchange("GET", endpoint)
    assert str(info.value.error) == (f"could not connect to 127.0.0.1:{port} (connection refused); "
                                     "check MARKETO_REST_ENDPOINT")
    assert info.value.handling is Handling.RETRY


def test_apply_says_once_that_it_could_not_connect(tmp_path, monkeypatch):
    from clirunner import invoke

    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text("leads:\n  - email: a@example.com\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", "--auto-approve", environ={
        "MARKETO_SOAP_ENDPOINT": "https://no-such-host.invalid/soap/mktows/2_1", "MARKETO_USER_ID": "u",
        "MARKETO_ENCRYPTION_KEY": "k"})
    assert result.exit_code == 4
    assert result.stderr.count("could not connect to no-such-host.invalid:443 (host name not found)") == 1
    assert "Connection" not in result.stderr and "urllib3" not in result.stderr and "…" not in result.stderr
    assert "0 syncMultipleLeads call(s)" in result.stdout


def test_a_reason_phrase_with_control_characters_is_shown_escaped(trickler):
    server = trickler(b"HTTP/1.1 404 Not\rFound\x1b::add-mask::x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                      fast_prefix=10_000)
    client = http.HttpClient(endpoint_env="MARKETO_SOAP_ENDPOINT")
    answer = client.exchange("POST", server.endpoint, body=b"<x/>")
    message = str(client.classify_status(answer, server.endpoint).error)
    assert "\r" not in message and "\x1b" not in message
    assert "HTTP 404 Not\\rFound\\x1b::add-mask::x" in message


@pytest.mark.parametrize("option", [False, True])
def test_apply_never_echoes_a_password_in_the_endpoint(tmp_path, monkeypatch, option):
    from clirunner import invoke

    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text("leads:\n  - email: a@example.com\n")
    monkeypatch.chdir(tmp_path)
    endpoint = "htps://svc:Pa55word@host/soap/mktows/2_1"
    environ = {"MARKETO_USER_ID": "u", "MARKETO_ENCRYPTION_KEY": "k"}
    args = ["apply", "--auto-approve"] + (["--endpoint", endpoint] if option else [])
    if not option:
        environ["MARKETO_SOAP_ENDPOINT"] = endpoint
    result = invoke(*args, environ=environ)
    assert result.exit_code == 64
    assert "Pa55word" not in result.stdout + result.stderr
    assert "htps://***@host/soap/mktows/2_1" in result.stderr


def test_the_debug_log_never_shows_credentials_in_a_url():
    endpoint, port = _refused_endpoint()
    url = endpoint.replace("http://", "http://svc:Pa55word@") + "?access_token=t0ken-value&x=1"
    logs = []
    client = http.HttpClient(endpoint_env="MARKETO_REST_ENDPOINT", log=logs.append)
    with pytest.raises(http.Failure) as info:
        client.exchange("GET", url, headers={"Accept": "application/json"})
    text = "\n".join(logs) + str(info.value.error)
    assert logs and "Pa55word" not in text and "t0ken-value" not in text
    assert f"> GET http://***@127.0.0.1:{port}/soap/mktows/2_1?access_token=***&x=1" in text


def test_a_dropped_connection_and_a_tls_failure_are_said_plainly(trickler):
    dropped = trickler(b"", fast_prefix=0)  # reads the request, answers nothing, closes
    client = http.HttpClient(endpoint_env="MARKETO_SOAP_ENDPOINT")
    with pytest.raises(http.Failure) as info:
        client.exchange("POST", dropped.endpoint, body=b"<x/>")
    port = dropped.endpoint.split(":")[2].split("/")[0]
    assert info.value.handling is Handling.UNKNOWN
    assert re.fullmatch(rf"connection to 127\.0\.0\.1:{port} lost before an answer "
                        r"\((closed by the server|connection reset)\)", str(info.value.error))

    plain = trickler(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 10, fast_prefix=10_000)
    with pytest.raises(http.Failure) as info:
        client.exchange("POST", plain.endpoint.replace("http://", "https://"), body=b"<x/>")
    port = plain.endpoint.split(":")[2].split("/")[0]
    assert info.value.handling is Handling.STOP
    message = str(info.value.error)
    assert message.startswith(f"TLS error talking to 127.0.0.1:{port} (") and "MARKETO_SOAP_ENDPOINT" in message
    assert "Pool" not in message and "Caused by" not in message


def test_a_trickled_answer_without_dedup_is_given_up_at_the_deadline_and_not_resent(trickler):
    import time

    server = trickler(HEADERS + b"x" * 30, fast_prefix=len(HEADERS))
    transport, sleeps = _soap_transport(server.endpoint, deadline=2.0)
    began = time.monotonic()
    with pytest.raises(OutcomeUnknown) as info:
        transport.send(_one_record(), dedup_enabled=False)
    assert time.monotonic() - began < 3.5
    assert "deadline passed" in str(info.value) and "not resent" in str(info.value)
    assert outcome_unknown(info.value) and sleeps == []
