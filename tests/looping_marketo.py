"""A REST server on loopback whose Get Leads pages never end: each answer offers a next page, with the
same `nextPageToken` again or a new one each time. Reads must stop on their own."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from rest_fake import describe_entries


class LoopingMarketo:
    def __init__(self, same_token: bool, fresh_leads: bool = False,
                 email_of=lambda lead_id: f"lead{lead_id}@example.com"):
        """`fresh_leads`: each page holds 300 leads never answered before (as if the matches never ended);
        else each page answers the leads asked for again."""
        self.same_token, self.fresh_leads, self.email_of = same_token, fresh_leads, email_of
        self.reads = 0
        marketo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                marketo.answer(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def environ(self) -> dict[str, str]:
        return {"MARKETO_REST_ENDPOINT": f"http://127.0.0.1:{self.server.server_port}/rest",
                "MARKETO_CLIENT_ID": "looping-client", "MARKETO_CLIENT_SECRET": "looping-secret-0f3e"}

    def __enter__(self) -> "LoopingMarketo":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        if url.path == "/identity/oauth/token":
            document = {"access_token": "looping-token-1", "token_type": "bearer", "expires_in": 3599}
        elif url.path == "/rest/v1/leads/describe.json":
            document = {"requestId": "1", "success": True, "result": describe_entries()}
        else:
            self.reads += 1
            query = parse_qs(url.query)
            values = query["filterValues"][0].split(",")
            if self.fresh_leads:
                rows = [{"id": self.reads * 1000 + number, "email": f"dup{number}@example.com"}
                        for number in range(300)]
            elif query["filterType"][0] == "email":
                rows = [{"id": 100 + number, "email": email} for number, email in enumerate(values)]
            else:
                rows = [{"id": int(value), "email": self.email_of(int(value))} for value in values]
            token = "same-token" if self.same_token else f"token-{self.reads}"
            document = {"requestId": str(self.reads), "success": True, "moreResult": True, "nextPageToken": token,
                        "result": rows}
        body = json.dumps(document).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
