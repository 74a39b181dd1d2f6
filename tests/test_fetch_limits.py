"""Fetch limits under hostile servers: one deadline for the whole fetch, and gzip bombs.

The slow servers are real sockets on 127.0.0.1 that send one byte a second, while the status
line and headers are still coming or in the body; they give up after DRIP_SECONDS, so code
without a deadline fails the time bound instead of hanging the test run.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import Settings
from bot.ingest.fetch import Fetcher, FetchError

from conftest import make_settings
from fixtures.local_http import LocalServer, Response

DRIP_SECONDS = 20
SLACK = 2.0  # the bound is the timeout plus this
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"


class DripServer:
    """Answers every request by sending `prefix` at once, then one byte of `drip` per second."""

    def __init__(self, prefix: bytes, drip: bytes) -> None:
        self.prefix = prefix
        self.drip = drip
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/slow"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                request += chunk
            try:
                connection.sendall(self.prefix)
                for index in range(DRIP_SECONDS):
                    if self._stop.wait(1.0):
                        return
                    connection.sendall(self.drip[index % len(self.drip) : index % len(self.drip) + 1])
            except OSError:
                return  # the client gave up

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


HEADER_DRIP = (b"", HEAD + b"X-Padding: " + b"a" * 200)  # the status line itself arrives a byte a second
BODY_DRIP = (HEAD + b"Content-Length: 100000\r\n\r\n", b"<p>slow</p>")
UNTIL_CLOSE_DRIP = (HEAD + b"Connection: close\r\n\r\n", b"<p>slow</p>")  # no length: the body ends when the socket does


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"fetch_allowed_hosts": ["127.0.0.1"], "fetch_timeout": 2.0}
    values.update(overrides)
    return make_settings("sqlite://", tmp_path, **values)


@pytest.mark.parametrize(("prefix", "drip"), [HEADER_DRIP, BODY_DRIP, UNTIL_CLOSE_DRIP], ids=["headers", "body", "until-close"])
def test_a_server_dripping_a_byte_a_second_is_cut_off_at_the_deadline(tmp_path: Path, prefix: bytes, drip: bytes) -> None:
    with DripServer(prefix, drip) as server, Fetcher(settings_for(tmp_path)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"timed out after 2s fetching http://127\.0\.0\.1"):
            fetcher.fetch(server.url)
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 2.0 + SLACK


def test_the_deadline_covers_redirects_too(tmp_path: Path) -> None:
    # Each hop answers within the timeout, but the two together take longer.
    with LocalServer() as server, Fetcher(settings_for(tmp_path, fetch_timeout=1.5)) as fetcher:
        server.add("/first", Response(302, headers={"Location": "/second"}, delay=1.0))
        server.add("/second", Response(body=b"<p>late</p>", headers={"Content-Type": "text/html"}, delay=1.0))
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"timed out after 1\.5s"):
            fetcher.fetch(server.url("/first"))
        assert time.monotonic() - started < 1.5 + SLACK


@pytest.fixture
def run(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FETCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FETCH_TIMEOUT", "2")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("prefix", "drip"), [HEADER_DRIP, BODY_DRIP], ids=["headers", "body"])
def test_newsbot_ingest_of_a_dripping_url_ends_at_fetch_timeout_with_one_line(  # type: ignore[no-untyped-def]  # fixture `run`
    run, prefix: bytes, drip: bytes
) -> None:
    with DripServer(prefix, drip) as server:
        started = time.monotonic()
        result = run("ingest", server.url)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0 + SLACK
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"newsbot ingest: timed out after 2s fetching {server.url}"]


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (about 1000:1), built without holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 200_000
    limit = 1_000_000
    with LocalServer() as server, Fetcher(settings_for(tmp_path, fetch_max_bytes=limit, fetch_timeout=10)) as fetcher:
        server.add("/bomb", Response(body=bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}))
        tracemalloc.start()
        try:
            with pytest.raises(FetchError, match="larger than the 1000000 byte limit"):
                fetcher.fetch(server.url("/bomb"))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Never much more than the limit in memory (httpx alone would inflate each 64 KiB read to 64 MB).
    assert peak < 4 * limit


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_pages_are_decoded(tmp_path: Path, coding: str) -> None:
    page = ("<html><body>" + "<p>Ferries run again after the storm.</p>" * 200 + "</body></html>").encode()
    if coding == "gzip":
        body = gzip.compress(page) + gzip.compress(b"<!-- second member -->")
        page += b"<!-- second member -->"
    elif coding == "deflate":
        body = zlib.compress(page)
    else:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # what some servers send as "deflate"
        body = compressor.compress(page) + compressor.flush()
    header = "deflate" if coding == "raw-deflate" else coding
    with LocalServer() as server, Fetcher(settings_for(tmp_path)) as fetcher:
        server.add("/page", Response(body=body, headers={"Content-Type": "text/html", "Content-Encoding": header}))
        assert fetcher.fetch(server.url("/page")).content == page
        assert server.requests[-1][1]["accept-encoding"] == "gzip, deflate"


def test_unasked_content_encodings_and_broken_gzip_are_one_clear_error(tmp_path: Path) -> None:
    with LocalServer() as server, Fetcher(settings_for(tmp_path)) as fetcher:
        server.add(
            "/br", Response(body=b"\x0b\x02\x80hello\x03", headers={"Content-Type": "text/html", "Content-Encoding": "br"})
        )
        server.add(
            "/broken",
            Response(body=b"\x1f\x8bnot gzip at all", headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        )
        with pytest.raises(FetchError, match="unsupported Content-Encoding: br"):
            fetcher.fetch(server.url("/br"))
        with pytest.raises(FetchError, match="broken gzip body") as raised:
            fetcher.fetch(server.url("/broken"))
        assert "\n" not in str(raised.value)
