"""Fetching pages and feeds safely: http(s) only, public addresses only, time and size limits.

Every hop (the first URL and each redirect) is resolved and checked before it is contacted, and
the connection goes to the checked address itself (the Host header and TLS name carry the host
name), so a DNS answer that changes between check and connect cannot reach a private address.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from bot.config import Settings

if TYPE_CHECKING:
    from bot.ingest.service import ArticleInput

MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
     "text/html", "text/plain", "application/x-rss+xml"}
)  # fmt: skip
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A URL could not be fetched; the message says why in one line."""


@dataclass
class FetchedPage:
    """A fetched response body with what is needed to decode and revalidate it."""

    url: str  # after redirects
    content: bytes
    content_type: str  # media type only, lowercased; "" when the server sent none
    charset: str | None
    status: int
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def is_public_address(address: IpAddress) -> bool:
    """Whether an address is on the public internet (not loopback, private, link-local, metadata...)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    return address.is_global and not address.is_multicast


class Fetcher:
    """Fetches URLs under the FETCH_* settings; one instance per process (it holds a client)."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._allowed = {host.strip().lower() for host in settings.fetch_allowed_hosts if host.strip()}
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.fetch_timeout),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass the address checks
            headers={"User-Agent": settings.fetch_user_agent},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- checks --------------------------------------------------------------------------
    def _is_allowed_host(self, host: str, port: int) -> bool:
        return host in self._allowed or f"{host}:{port}" in self._allowed

    def _resolve(self, host: str, port: int) -> list[IpAddress]:
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass
        else:
            return [literal]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise FetchError(f"cannot resolve host {host}: {error}") from None
        addresses: list[IpAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise FetchError(f"cannot resolve host {host}")
        return addresses

    def check_url(self, url: str) -> tuple[str, str, list[IpAddress]]:
        """Validate one hop; returns (url, host, checked addresses) or raises FetchError."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"only http and https URLs can be fetched, not {scheme or 'a bare path'}: {url[:200]}")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError(f"URL has no host: {url[:200]}")
        if parts.username or parts.password:
            raise FetchError("URLs with a user name or password are not fetched")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"bad port in URL: {url[:200]}") from None
        addresses = self._resolve(host, port)
        if not self._is_allowed_host(host, port):
            for address in addresses:
                if not is_public_address(address):
                    raise FetchError(
                        f"refusing to fetch {host}: it resolves to a non-public address ({address})"
                    )
        return url, host, addresses

    # --- fetching ------------------------------------------------------------------------
    def fetch(
        self,
        url: str,
        *,
        accept: frozenset[str] = HTML_TYPES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchedPage:
        """GET `url` following up to 5 checked redirects; raises FetchError with a clear reason."""
        deadline = time.monotonic() + self._settings.fetch_timeout * 2
        current = url.strip()
        for _hop in range(MAX_REDIRECTS + 1):
            current, host, addresses = self.check_url(current)
            try:
                page = self._get_any(current, host, addresses, accept, etag, last_modified, deadline)
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {self._settings.fetch_timeout:g}s fetching {current[:200]}") from None
            except httpx.HTTPError as error:
                raise FetchError(f"could not fetch {current[:200]}: {error.__class__.__name__}: {error}") from None
            if isinstance(page, str):
                current = page  # a redirect to check and follow
                continue
            return page
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}) from {url[:200]}")

    def _get_any(
        self,
        url: str,
        host: str,
        addresses: list[IpAddress],
        accept: frozenset[str],
        etag: str | None,
        last_modified: str | None,
        deadline: float,
    ) -> FetchedPage | str:
        """Try the checked addresses in turn ("localhost" may be ::1 and 127.0.0.1)."""
        for address in addresses[:-1]:
            try:
                return self._get(url, host, address, accept, etag, last_modified, deadline)
            except httpx.ConnectError:
                continue
        return self._get(url, host, addresses[-1], accept, etag, last_modified, deadline)

    def _get(
        self,
        url: str,
        host: str,
        address: IpAddress,
        accept: frozenset[str],
        etag: str | None,
        last_modified: str | None,
        deadline: float,
    ) -> FetchedPage | str:
        parts = urlsplit(url)
        pinned_host = f"[{address}]" if address.version == 6 else str(address)
        netloc = pinned_host if parts.port is None else f"{pinned_host}:{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": ", ".join(sorted(accept)) + ", */*;q=0.1"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self._client.build_request("GET", pinned, headers=headers, extensions=extensions)
        response = self._client.send(request, stream=True)
        try:
            if response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(f"{url[:200]} redirects without a Location")
                return urljoin(url, location)
            if response.status_code == 304:
                return FetchedPage(url=url, content=b"", content_type="", charset=None, status=304,
                                   etag=etag, last_modified=last_modified)  # fmt: skip
            if response.status_code >= 400:
                raise FetchError(f"{url[:200]} answered HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "")
            media_type = content_type.split(";")[0].strip().lower()
            if media_type and media_type not in accept:
                wanted = "an HTML or text page" if accept == HTML_TYPES else "an RSS/Atom feed"
                hint = " (add feeds with `newsbot feeds add`)" if "rss" in media_type or "atom" in media_type else ""
                raise FetchError(f"{url[:200]} is {media_type}, not {wanted}{hint}")
            limit = self._settings.fetch_max_bytes
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"{url[:200]} is larger than the {limit} byte limit ({declared} bytes)")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes(CHUNK_SIZE):
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"{url[:200]} is larger than the {limit} byte limit")
                if time.monotonic() > deadline:
                    raise FetchError(f"timed out reading {url[:200]}")
                chunks.append(chunk)
            return FetchedPage(
                url=url,
                content=b"".join(chunks),
                content_type=media_type,
                charset=response.charset_encoding,
                status=response.status_code,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        finally:
            response.close()


def fetch_article(url: str, settings: Settings, tags: tuple[str, ...] | list[str] = ()) -> ArticleInput:
    """Fetch one page and parse it into an ArticleInput (a short-lived Fetcher; IngestError on failure)."""
    from bot.ingest.loaders import fetch_article as load

    with Fetcher(settings) as fetcher:
        return load(fetcher, url, tags)
