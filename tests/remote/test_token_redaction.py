"""An access token is a secret whatever it holds: one with a line break or a space in it is masked
whole in every message and in the `--debug` log, never cut at the break."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.remote.rest.redact import Redactor

HIDDEN = "SECRETPART9f2"
TOKENS = [f"tok\n{HIDDEN}", f"tok {HIDDEN}", f"tok\r\n{HIDDEN}", f"tok\t{HIDDEN}", f"tok\"{HIDDEN}"]


class TokenServer:
    """An identity service on loopback that issues `token`; REST calls answer 601."""

    def __init__(self, token: str):
        issued = token

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/identity/oauth/token"):
                    document = {"access_token": issued, "token_type": "bearer", "expires_in": 3599}
                else:
                    document = {"requestId": "1", "success": False,
                                "errors": [{"code": "601", "message": "Access token invalid"}]}
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.environ = {"MARKETO_REST_ENDPOINT": f"http://127.0.0.1:{self.server.server_port}/rest",
                        "MARKETO_CLIENT_ID": "client", "MARKETO_CLIENT_SECRET": "client-secret-77aa"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("token", TOKENS, ids=["lf", "space", "crlf", "tab", "quote"])
def test_a_token_with_a_break_is_never_printed_even_in_part(token: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leads").mkdir()
    server = TokenServer(token)
    try:
        result = invoke("--debug", "fields", environ=server.environ)
    finally:
        server.close()
    assert result.exit_code == 4, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert HIDDEN not in output and HIDDEN not in output.replace("\\", "")
    assert "access token" in result.stderr  # the message says what is wrong
    assert "debug: " in output  # the debug log ran


@pytest.mark.parametrize("token", TOKENS, ids=["lf", "space", "crlf", "tab", "quote"])
def test_the_redactor_masks_a_token_whole_in_every_form_it_is_quoted(token: str) -> None:
    redact = Redactor("client-secret-77aa")
    redact.add(token)
    for text in (f"Authorization: Bearer {token}", repr(f"Bearer {token}"), json.dumps({"access_token": token}),
                 f"header value: {token!r}"):
        assert HIDDEN not in redact(text), text
