"""LoRA Deck's own GET requests to the Hub: repository metadata and safetensors header ranges.

Sent through huggingface_hub's `http_backoff` (its session: proxies, certificates, user agent), so a
connection that drops or hangs up mid-answer is retried with a short backoff instead of failing the
command; a connection that cannot be made at all is not retried (reach.py has already said whether
the Hub is there). Redirects are followed by that session, which drops the Authorization header
when one leads to another origin; `token_headers_for` does the same for the URLs we are handed.
"""
from __future__ import annotations

from urllib.parse import urlsplit

RETRIES = 3                    # after the first try: waits of 0.5, 1 and 2 s
RETRY_STATUS = (429, 500, 502, 503, 504)


def _interrupted():
    import httpx2
    # A connection was made and then broke: worth another try. (Connect errors are not in here.)
    return (httpx2.ReadError, httpx2.WriteError, httpx2.CloseError, httpx2.RemoteProtocolError,
            httpx2.ReadTimeout, httpx2.WriteTimeout)


def hub_get(url: str, *, headers: dict | None = None, params: dict | None = None, timeout: float = 30.0):
    """GET `url` with the user's token, retrying interrupted connections; raises huggingface_hub's
    HTTP errors (map them with client.hub_errors)."""
    import httpx2
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff
    response = http_backoff("GET", url, headers={**build_hf_headers(), **(headers or {})}, params=params,
                            timeout=httpx2.Timeout(timeout, connect=10.0), max_retries=RETRIES,
                            base_wait_time=0.5, max_wait_time=2.0, retry_on_exceptions=_interrupted(),
                            retry_on_status_codes=RETRY_STATUS)
    hf_raise_for_status(response)
    return response


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or "").lower(),
            parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0))


def token_headers_for(url: str, target: str) -> dict:
    """huggingface_hub's headers (token included) for a request to `target` that `url` redirected to;
    without the token when `target` is on another origin (a CDN's signed URL needs none)."""
    from huggingface_hub.utils import build_hf_headers
    headers = build_hf_headers()
    if origin(target) != origin(url):
        for key in [k for k in headers if k.lower() == "authorization"]:
            del headers[key]
    return headers
