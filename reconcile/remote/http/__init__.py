"""HTTP machinery shared by every Marketo API transport (SOAP and REST): no wire format here.

A transport built on this package keeps only its own session details, its request building and its
classification of answers. Everything else lives here, one module per concern:

- `endpoints`: checking endpoint URLs, and text from a server or a URL made fit for a message or log;
- `limits`: the rate window, waits that wake on a stop, the retry policy and its backoff;
- `quota`: when the daily quota resets, and what to tell the user;
- `retry`: failures classified by `Handling`, and the retry loop around one call;
- `exchange`: one HTTP request and its answer (`HttpClient`), with the deadline and the counters.

Everything is importable from here too (`from reconcile.remote.http import HttpClient`).
"""

from reconcile.remote.http.endpoints import host_port, is_loopback, one_line, redact_url, validate_endpoint
from reconcile.remote.http.exchange import (DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES, LOG_BODY_LIMIT, Answer,
                                            HttpClient, user_agent)
from reconcile.remote.http.limits import (Admission, RateLimiter, RetryPolicy, Stopped, backoff_delay, pause,
                                          retry_after)
from reconcile.remote.http.quota import quota_message, quota_reset_after
from reconcile.remote.http.retry import Counters, Failure, call_with_retries

__all__ = [
    "is_loopback", "validate_endpoint", "redact_url", "one_line", "RateLimiter", "Admission", "Stopped", "pause",
    "RetryPolicy", "backoff_delay", "quota_reset_after", "quota_message", "retry_after", "user_agent",
    "Answer", "Failure", "HttpClient", "Counters", "call_with_retries", "host_port", "DEFAULT_DEADLINE",
    "LOG_BODY_LIMIT", "DEFAULT_MAX_RESPONSE_BYTES",
]
