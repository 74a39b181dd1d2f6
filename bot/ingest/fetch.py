"""Fetching pages and feeds safely: http(s) only, public addresses only, time and size limits.

Every hop (the first URL and each redirect) is resolved and checked before it is contacted, and
the connection goes to the checked address itself (the Host header and TLS name carry the host
name), so a DNS answer that changes between check and connect cannot reach a private address.

One deadline, FETCH_TIMEOUT seconds, covers the whole fetch (name resolution, connecting, headers,
body, every redirect): each step gets only the time that is left, and a timer shuts the sockets
down at the deadline, so a server dripping a byte a second cannot hold a fetch longer.
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
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
# Content codings decoded here, with a bound on the output of each step (see _decoded).
ACCEPT_ENCODING = "gzip, deflate"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A URL could not be fetched; the message says why in one line."""


@dataclass
class FetchedPage:
    """A fetched response body with what is needed to decode and revalidate it."""

    url: str  # after redirects
    content: bytes  # decoded from gzip/deflate when the server compressed it
    content_type: str  # media type only, lowercased; "" when the server sent none
    charset: str | None  # Content-Type's charset as a Python codec name ("utf-8", "cp1251"); None if absent or unknown
    status: int
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# Special-purpose blocks of the IANA IPv4 and IPv6 registries (and deprecated forms that embed
# IPv4). Python 3.11's `is_global` misses several of them (6to4, 3fff::/20, 64:ff9b:1::/48,
# 192.88.99.0/24, the AS112 blocks...), so they are listed here as well.
SPECIAL_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(block)
    for block in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
        "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23",
        "2001:db8::/32", "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
        "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # every other IPv6 block is reserved or special
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix; DNS64 answers for IPv4-only sites
SIXTOFOUR = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IpAddress) -> bool:
    """Whether an address is on the public internet: in no special-purpose block of the IANA registries.

    IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 addresses are judged by the IPv4 address they
    embed; the local-use NAT64 prefix, IPv4-compatible and IPv4-translated forms and Teredo are
    refused whatever they embed.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address not in GLOBAL_UNICAST:
            return False
    if any(address in network for network in SPECIAL_NETWORKS if network.version == address.version):
        return False
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_private
        and not address.is_link_local
        and not address.is_loopback
        and not address.is_unspecified
    )


class _Deadline:
    """The one deadline of a fetch; at it, a timer shuts down every socket the fetch opened.

    Shutting a socket down (not closing it) is safe from another thread: a read blocked on it
    returns at once, and the socket object stays valid for its owner to close. The sockets are
    duplicates held here, so the timer never touches a descriptor that was reused meanwhile.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(max(self.remaining(), 0.001))

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace extension: remember each new connection's socket."""
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._done:
                return
            try:
                duplicate = sock.dup()
            except OSError:
                return
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


def _codec_name(charset: str | None) -> str | None:
    """Python's name for a declared charset ("UTF-8" -> "utf-8"), or None when unknown."""
    if not charset:
        return None
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    return name if is_text_codec(name) else None


# Text codecs no web page is written in: UTF-7 is refused by browsers (it smuggles markup past
# filters), the others are Python-specific escapes.
_NOT_PAGE_CODECS = frozenset({"utf-7", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


def is_text_codec(name: str) -> bool:
    """Whether a Python codec decodes bytes to page text (zlib, base64, rot13 and UTF-7 do not)."""
    if name in _NOT_PAGE_CODECS:
        return False
    try:
        b"a".decode(name)
    except LookupError:
        return False
    except UnicodeError:
        pass  # a text codec that cannot decode "a" alone (UTF-16)
    return True


class Fetcher:
    """Fetches URLs under the FETCH_* settings; one instance per process (it holds a client)."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._allowed = {host.strip().lower() for host in settings.fetch_allowed_hosts if host.strip()}
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.fetch_timeout),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass the address checks
            headers={"User-Agent": settings.fetch_user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            # No kept-alive connections: each fetch opens its own, so the deadline's timer knows
            # every socket a fetch reads from (and pinned addresses differ per host anyway).
            limits=httpx.Limits(max_keepalive_connections=0),
            transport=transport,
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- checks --------------------------------------------------------------------------
    def _is_allowed_host(self, host: str, port: int) -> bool:
        return host in self._allowed or f"{host}:{port}" in self._allowed

    def _resolve(self, host: str, port: int, deadline: _Deadline | None = None) -> list[IpAddress]:
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass
        else:
            return [literal]
        infos = _getaddrinfo(host, port, deadline)
        addresses: list[IpAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise FetchError(f"cannot resolve host {host}")
        return addresses

    def check_url(self, url: str, deadline: _Deadline | None = None) -> tuple[str, str, list[IpAddress]]:
        """Validate one hop; returns (url, host, checked addresses) or raises FetchError."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if parts.username or parts.password:  # checked first: no message repeats credentials
            raise FetchError("URLs with a user name or password are not fetched")
        if scheme not in ("http", "https"):
            raise FetchError(f"only http and https URLs can be fetched, not {scheme or 'a bare path'}: {url[:200]}")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError(f"URL has no host: {url[:200]}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"bad port in URL: {url[:200]}") from None
        addresses = self._resolve(host, port, deadline)
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
        """GET `url` following up to 5 checked redirects within FETCH_TIMEOUT in all; FetchError on failure."""
        deadline = _Deadline(self._settings.fetch_timeout)
        try:
            return self._fetch(url, accept, etag, last_modified, deadline)
        finally:
            deadline.close()

    def _fetch(
        self, url: str, accept: frozenset[str], etag: str | None, last_modified: str | None, deadline: _Deadline
    ) -> FetchedPage:
        current = url.strip()
        for _hop in range(MAX_REDIRECTS + 1):
            current, host, addresses = self.check_url(current, deadline)
            try:
                page = self._get_any(current, host, addresses, accept, etag, last_modified, deadline)
            except httpx.TimeoutException:
                raise _timed_out(deadline, current) from None
            except httpx.HTTPError as error:
                if deadline.passed():
                    raise _timed_out(deadline, current) from None
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
        deadline: _Deadline,
    ) -> FetchedPage | str:
        """Try the checked addresses in turn ("localhost" may be ::1 and 127.0.0.1)."""
        for address in addresses[:-1]:
            try:
                return self._get(url, host, address, accept, etag, last_modified, deadline)
            except httpx.ConnectError:
                if deadline.passed():
                    raise
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
        deadline: _Deadline,
    ) -> FetchedPage | str:
        if deadline.passed():
            raise _timed_out(deadline, url)
        parts = urlsplit(url)
        pinned_host = f"[{address}]" if address.version == 6 else str(address)
        netloc = pinned_host if parts.port is None else f"{pinned_host}:{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": ", ".join(sorted(accept)) + ", */*;q=0.1"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        extensions: dict[str, Any] = {"trace": deadline.trace}
        if parts.scheme == "https":
            extensions["sni_hostname"] = host
        request = self._client.build_request(
            "GET", pinned, headers=headers, extensions=extensions, timeout=deadline.timeout()
        )
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
            codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",") if c.strip()]
            codings = [c for c in codings if c != "identity"]
            if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
                raise FetchError(f"{url[:200]} uses an unsupported Content-Encoding: {', '.join(codings)}")
            raw = self._raw_body(response, url, limit, deadline)
            content = b"".join(_decoded(raw, codings[0] if codings else None, limit, url))
            return FetchedPage(
                url=url,
                content=content,
                content_type=media_type,
                charset=_codec_name(response.charset_encoding),
                status=response.status_code,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        finally:
            response.close()

    @staticmethod
    def _raw_body(response: httpx.Response, url: str, limit: int, deadline: _Deadline) -> Iterator[bytes]:
        """The body as it arrives (each network read), cut off past the size limit or the deadline."""
        size = 0
        for chunk in response.iter_raw():
            if deadline.passed():
                raise _timed_out(deadline, url)
            size += len(chunk)
            if size > limit:
                raise FetchError(f"{url[:200]} is larger than the {limit} byte limit")
            yield chunk
        if deadline.expired:
            # The timer shut the socket down: a body that runs until the connection closes
            # would look complete, but it was cut short.
            raise _timed_out(deadline, url)


def _decoded(chunks: Iterator[bytes], coding: str | None, limit: int, url: str) -> Iterator[bytes]:
    """Undo gzip/deflate while never holding more than `limit` decoded bytes (a gzip bomb stops early).

    httpx would inflate each network read whole (64 KiB of gzip can become 64 MB); zlib's
    max_length bounds every step here instead.
    """
    if coding is None:
        yield from chunks
        return
    gzip = coding in ("gzip", "x-gzip")
    # gzip (wbits 31) or zlib-wrapped deflate (15); some servers send raw deflate (-15) instead.
    wbits = zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    seen = b""  # deflate input before any output, to replay as raw deflate
    size = 0
    for chunk in chunks:
        pending = chunk
        while pending:
            if wbits == zlib.MAX_WBITS and size == 0:
                seen += pending
            try:
                out = decoder.decompress(pending, limit + 1 - size)
            except zlib.error as error:
                if wbits == zlib.MAX_WBITS and size == 0:
                    wbits = -zlib.MAX_WBITS
                    decoder = zlib.decompressobj(wbits)
                    pending, seen = seen, b""
                    continue
                raise FetchError(f"{url[:200]} sent a broken {coding} body: {error}") from None
            size += len(out)
            if size > limit:
                raise FetchError(f"{url[:200]} is larger than the {limit} byte limit (after decompression)")
            if out:
                yield out
            if decoder.eof:
                pending = decoder.unused_data if gzip else b""  # gzip may have several members
                if pending:
                    decoder = zlib.decompressobj(wbits)
            else:
                pending = decoder.unconsumed_tail
    tail = decoder.flush()
    if size + len(tail) > limit:
        raise FetchError(f"{url[:200]} is larger than the {limit} byte limit (after decompression)")
    if tail:
        yield tail


def _getaddrinfo(host: str, port: int, deadline: _Deadline | None) -> list[Any]:
    """socket.getaddrinfo within the deadline (the resolver has no timeout of its own)."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def resolve() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as error:
            failure.append(error)

    if deadline is None:
        resolve()
    else:
        # A thread that outlives the deadline is left to finish alone (getaddrinfo cannot be
        # interrupted); it holds nothing but its answer.
        worker = threading.Thread(target=resolve, name="newsbot-resolve", daemon=True)
        worker.start()
        worker.join(max(deadline.remaining(), 0))
        if worker.is_alive():
            raise FetchError(f"timed out after {deadline.seconds:g}s resolving host {host}")
    if failure:
        raise FetchError(f"cannot resolve host {host}: {failure[0]}")
    return result


def _timed_out(deadline: _Deadline, url: str) -> FetchError:
    return FetchError(f"timed out after {deadline.seconds:g}s fetching {url[:200]}")


def fetch_article(
    url: str, settings: Settings, tags: Sequence[str] = (), *, fetcher: Fetcher | None = None
) -> ArticleInput:
    """Fetch one page and parse it into an ArticleInput; IngestError (with the reason) on failure.

    Pass `fetcher` to reuse one (the CLI fetches many URLs); otherwise a short-lived one is used.
    """
    from bot.ingest.loaders import article_from_bytes
    from bot.ingest.service import IngestError

    if fetcher is None:
        with Fetcher(settings) as own:
            return fetch_article(url, settings, tags, fetcher=own)
    try:
        page = fetcher.fetch(url, accept=HTML_TYPES)
    except FetchError as error:
        raise IngestError(str(error)) from error  # the cause tells a download problem from a bad page
    article = article_from_bytes(
        page.content, name=page.url, declared_charset=page.charset, url=page.url, tags=tags,
        content_type=page.content_type,
    )  # fmt: skip
    if article.url is None:
        article.url = page.url
    return article
