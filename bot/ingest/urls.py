"""Canonical form of article URLs, so the same page is recognized under small URL variations."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that track the reader, not select the content.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "ref", "ref_src",
     "_ga", "cmpid", "ocid", "spm", "share"}
)  # fmt: skip
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048


class InvalidUrl(ValueError):
    """Not an absolute http(s) URL."""


def canonical_url(url: str) -> str:
    """Lowercase scheme and host, no default port, fragment or tracking parameters."""
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidUrl(f"not an http(s) URL: {text[:200]}")
    try:
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise InvalidUrl(f"bad port in URL: {text[:200]}") from None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.lower().startswith("utm_") and key.lower() not in TRACKING_PARAMS
    ]
    path = parts.path or "/"
    result = urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))
    if len(result) > MAX_URL_LENGTH:
        raise InvalidUrl("URL is longer than 2048 characters")
    return result
