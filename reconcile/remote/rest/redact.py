"""Keeping the client secret and access tokens out of every message and debug log line.

The secret travels in the token request's query string (the form Marketo documents) and each token in
an `Authorization` header and an identity answer: all three places are masked by pattern, and every
value known to be secret is masked wherever else it turns up (an error text quoting a URL, say).
"""

from __future__ import annotations

import json
import re
import threading

MASK = "***"
_PATTERNS = (
    (re.compile(r"(?i)(client_secret=)[^&\s\"']*"), r"\1" + MASK),
    (re.compile(r"(?i)(access_token=)[^&\s\"']*"), r"\1" + MASK),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\"access_token\"\s*:\s*\")(?:[^\"\\]|\\.)*"), r"\1" + MASK),  # JSON escapes too
)


class Redactor:
    """Masks known secret values and secret-shaped fields in text. Thread-safe; learns new tokens."""

    def __init__(self, *secrets: str):
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:
            return  # masking a very short string would mangle ordinary text and hide nothing
        # the secret as it is, and as a message or a log quotes it: repr() and JSON escape line breaks
        forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        with self._lock:
            # longest first: a secret that contains another is masked whole
            self._secrets = tuple(sorted(set(self._secrets) | forms, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        # known secrets first: a pattern would mask a token only up to its first space or line break
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def body(self, content: bytes | None) -> str:
        return self(content.decode("utf-8", errors="replace")) if content else ""
