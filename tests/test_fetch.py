"""Fetcher: address checks after DNS and on redirects, size cap, content types, timeouts, decoding."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.ingest.fetch import FEED_TYPES, Fetcher, FetchError, fetch_article, is_public_address
from bot.ingest.service import IngestError

from conftest import make_settings
from fixtures.local_http import LocalServer, Response

ARTICLE_HTML = (
    "<html><head><title>Harbour Reopens | Coast News</title><meta charset='utf-8'>"
    "<link rel='canonical' href='/news/harbour?utm_source=feed'></head><body><nav>Home | News | Sport</nav>"
    "<article><h1>Harbour reopens after storm repairs</h1>"
    "<p>The harbour reopened on Monday after three weeks of repairs to the breakwater damaged in the storm.</p>"
    "<p>Fishing boats returned to their moorings and the ferry service will resume its normal timetable tomorrow.</p>"
    "</article><footer>© 2024 Coast News</footer></body></html>"
)


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"fetch_allowed_hosts": ["127.0.0.1"], "fetch_timeout": 2.0}
    values.update(overrides)
    return make_settings("sqlite://", tmp_path, **values)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
        ("172.16.0.5", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
        ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("224.0.0.1", False),
    ],
)  # fmt: skip
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_fetches_page_from_allowed_host_and_parses_it(server: LocalServer, tmp_path: Path) -> None:
    server.add("/harbour", Response(body=ARTICLE_HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"}))
    with Fetcher(settings_for(tmp_path)) as fetcher:
        article = fetch_article(server.url("/harbour"), fetcher.settings, ["Coast"], fetcher=fetcher)
    assert article.title == "Harbour reopens after storm repairs"
    assert article.url == server.url("/news/harbour?utm_source=feed")
    assert article.body.startswith("The harbour reopened on Monday")
    assert "Home | News" not in article.body and "©" not in article.body
    assert "Coast" in article.tags
    assert server.requests[0][1]["user-agent"].startswith("newsbot")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data",
     "http://10.0.0.1/", "http://0x7f000001/", "http://2130706433/"],
)  # fmt: skip
def test_private_addresses_are_refused_by_default(url: str, tmp_path: Path) -> None:
    with (
        Fetcher(settings_for(tmp_path, fetch_allowed_hosts=[])) as fetcher,
        pytest.raises(FetchError, match=r"non-public address|cannot resolve"),
    ):
        fetcher.fetch(url)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x/", "/etc/passwd", "http://user:pw@example.com/"])
def test_only_plain_http_urls_are_fetched(url: str, tmp_path: Path) -> None:
    with Fetcher(settings_for(tmp_path)) as fetcher, pytest.raises(FetchError):
        fetcher.fetch(url)


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin", "http://localhost:1/"])
def test_redirect_to_private_address_is_refused(server: LocalServer, tmp_path: Path, target: str) -> None:
    server.add("/jump", Response(302, headers={"Location": target}))
    with Fetcher(settings_for(tmp_path)) as fetcher, pytest.raises(FetchError, match="non-public address"):
        fetcher.fetch(server.url("/jump"))


def test_redirects_are_followed_and_limited(server: LocalServer, tmp_path: Path) -> None:
    server.add("/a", Response(301, headers={"Location": "/b"}))
    server.add("/b", Response(body=b"<p>ok</p>", headers={"Content-Type": "text/html"}))
    server.add("/loop", Response(302, headers={"Location": "/loop"}))
    with Fetcher(settings_for(tmp_path)) as fetcher:
        page = fetcher.fetch(server.url("/a"))
        assert page.url == server.url("/b") and page.content == b"<p>ok</p>"
        with pytest.raises(FetchError, match="too many redirects"):
            fetcher.fetch(server.url("/loop"))


def test_size_cap_stops_a_50mb_stream_early(server: LocalServer, tmp_path: Path) -> None:
    chunk = b"<p>" + b"x" * (1024 * 1024 - 3)
    server.add("/huge", Response(body=(chunk for _ in range(50)), headers={"Content-Type": "text/html"}))
    server.add(
        "/declared", Response(body=b"x" * 10, headers={"Content-Type": "text/html", "Content-Length": str(50 * 1024 * 1024)})
    )
    with Fetcher(settings_for(tmp_path, fetch_max_bytes=2_000_000)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="larger than the 2000000 byte limit"):
            fetcher.fetch(server.url("/huge"))
        assert time.monotonic() - started < 10
        with pytest.raises(FetchError, match="larger than"):
            fetcher.fetch(server.url("/declared"))


def test_content_type_is_checked(server: LocalServer, tmp_path: Path) -> None:
    server.add("/image", Response(body=b"\x89PNG....", headers={"Content-Type": "image/png"}))
    server.add("/feed", Response(body=b"<rss/>", headers={"Content-Type": "application/rss+xml"}))
    with Fetcher(settings_for(tmp_path)) as fetcher:
        with pytest.raises(FetchError, match="image/png"):
            fetcher.fetch(server.url("/image"))
        with pytest.raises(FetchError, match="application/rss"):
            fetcher.fetch(server.url("/feed"))
        assert fetcher.fetch(server.url("/feed"), accept=FEED_TYPES).content == b"<rss/>"


def test_http_errors_and_timeouts_are_one_clear_message(server: LocalServer, tmp_path: Path) -> None:
    server.add("/gone", Response(410, b"gone"))
    server.add("/slow", Response(body=b"late", delay=3.0, headers={"Content-Type": "text/html"}))
    with Fetcher(settings_for(tmp_path, fetch_timeout=0.5)) as fetcher:
        with pytest.raises(FetchError, match="HTTP 410"):
            fetcher.fetch(server.url("/gone"))
        with pytest.raises(FetchError, match="timed out"):
            fetcher.fetch(server.url("/slow"))
        with pytest.raises(FetchError, match="could not fetch"):
            fetcher.fetch("http://127.0.0.1:1/closed-port")


def test_non_utf8_page_is_decoded(server: LocalServer, tmp_path: Path) -> None:
    text = ("<html><body><h1>Café crème prices rise again in Paris</h1>"
            "<p>Cafés across the city raised the price of a café crème this week, blaming rents and the cost of milk.</p>"
            "<p>Owners said customers grumbled but kept coming back for their morning coffee and croissant.</p>"
            "</body></html>")  # fmt: skip
    server.add("/latin", Response(body=text.encode("cp1252"), headers={"Content-Type": "text/html"}))
    with Fetcher(settings_for(tmp_path)) as fetcher:
        article = fetch_article(server.url("/latin"), fetcher.settings, fetcher=fetcher)
    assert "café crème" in article.body
    assert article.title == "Café crème prices rise again in Paris"


def test_fetch_problems_become_ingest_errors(tmp_path: Path) -> None:
    with Fetcher(settings_for(tmp_path, fetch_allowed_hosts=[])) as fetcher, pytest.raises(IngestError, match="non-public"):
        fetch_article("http://127.0.0.1/x", fetcher.settings, fetcher=fetcher)


def test_connection_is_pinned_to_the_checked_address_with_the_host_name_kept(server: LocalServer, tmp_path: Path) -> None:
    server.add("/named", Response(body=b"<p>ok</p>", headers={"Content-Type": "text/html"}))
    with Fetcher(settings_for(tmp_path, fetch_allowed_hosts=["localhost"])) as fetcher:
        page = fetcher.fetch(f"http://localhost:{server.port}/named")
    assert page.content == b"<p>ok</p>"
    assert page.url == f"http://localhost:{server.port}/named"
    assert server.requests[-1][1]["host"] == f"localhost:{server.port}"


def test_allowed_host_with_port_only_allows_that_port(server: LocalServer, tmp_path: Path) -> None:
    server.add("/p", Response(body=b"<p>ok</p>", headers={"Content-Type": "text/html"}))
    with Fetcher(settings_for(tmp_path, fetch_allowed_hosts=[f"127.0.0.1:{server.port}"])) as fetcher:
        assert fetcher.fetch(server.url("/p")).content == b"<p>ok</p>"
        with pytest.raises(FetchError, match="non-public"):
            fetcher.fetch("http://127.0.0.1:1/p")


# --- every special-purpose block of the IANA registries, and IPv6 forms that embed IPv4 ---------
@pytest.mark.parametrize(
    "address",
    [
        "0.1.2.3", "10.20.30.40", "100.64.0.1", "127.0.0.2", "169.254.169.254", "172.31.255.1", "192.0.0.9",
        "192.0.0.170", "192.0.2.10", "192.31.196.1", "192.52.193.1", "192.88.99.1", "192.168.0.1",
        "192.175.48.1", "198.18.0.1", "198.19.255.1", "198.51.100.7", "203.0.113.9", "224.0.0.251",
        "239.255.255.250", "233.252.0.1", "240.0.0.1", "255.255.255.255",
        "::", "::1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::7f00:1", "::808:808",
        "::ffff:0:7f00:1", "::ffff:0:808:808", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:101",
        "64:ff9b:1::808:808", "100::1", "100:0:0:1::1", "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1", "2001:3::1", "2001:4:112::1", "2001:10::1", "2001:20::1", "2001:db8::1", "2002:7f00:1::1",
        "2002:a00:1::1", "2002:a9fe:a9fe::1", "2620:4f:8000::1", "3fff::1", "5f00::1", "fc00::1", "fd00:ec2::254",
        "fe80::1", "fec0::1", "ff02::1", "4000::1",
    ],
)  # fmt: skip
def test_special_purpose_addresses_are_not_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8",
     "64:ff9b::808:808", "2002:808:808::1"],
)  # fmt: skip
def test_public_addresses_and_embedded_public_ipv4_are_allowed(address: str) -> None:
    # NAT64 (what DNS64 answers on IPv6-only hosts), IPv4-mapped and 6to4 lead to the IPv4 address they embed.
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "url",
    ["http://[64:ff9b::7f00:1]/", "http://[::ffff:7f00:1]/", "http://[::7f00:1]/", "http://[2002:7f00:1::1]/",
     "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://[64:ff9b:1::808:808]/", "http://[fec0::1]/",
     "http://192.0.0.9/", "http://198.18.0.1/"],
)  # fmt: skip
def test_urls_with_embedded_or_special_addresses_are_refused(url: str, tmp_path: Path) -> None:
    with (
        Fetcher(settings_for(tmp_path, fetch_allowed_hosts=[])) as fetcher,
        pytest.raises(FetchError, match="non-public address"),
    ):
        fetcher.fetch(url)


@pytest.mark.parametrize("target", ["http://[64:ff9b::7f00:1]:{port}/x", "http://[::ffff:127.0.0.1]:{port}/x", "http://[2002:7f00:1::1]/"])
def test_every_redirect_hop_is_checked_again(server: LocalServer, tmp_path: Path, target: str) -> None:
    # Two allowed hops, then a third to an IPv6 form of 127.0.0.1: refused before it is contacted.
    server.add("/one", Response(302, headers={"Location": "/two"}))
    server.add("/two", Response(302, headers={"Location": target.format(port=server.port)}))
    with Fetcher(settings_for(tmp_path)) as fetcher, pytest.raises(FetchError, match="non-public address"):
        fetcher.fetch(server.url("/one"))
    assert [path for path, _headers in server.requests] == ["/one", "/two"]


def test_declared_charset_is_exposed_as_a_codec_name_and_honoured(server: LocalServer, tmp_path: Path) -> None:
    text = ("<html><body><h1>Лавров требует от Запада гарантий безопасности</h1>"
            "<p>Министр иностранных дел России Сергей Лавров заявил в среду, что Москва ждёт от Запада "
            "юридически обязывающих гарантий безопасности, а не устных обещаний.</p>"
            "<p>По его словам, переговоры продолжатся на следующей неделе в Женеве.</p></body></html>")  # fmt: skip
    server.add("/ru", Response(body=text.encode("cp1251"), headers={"Content-Type": "text/html; charset=Windows-1251"}))
    server.add("/none", Response(body=b"<p>ok</p>", headers={"Content-Type": "text/html"}))
    server.add("/bogus", Response(body=b"<p>ok</p>", headers={"Content-Type": "text/html; charset=zlib"}))
    with Fetcher(settings_for(tmp_path)) as fetcher:
        page = fetcher.fetch(server.url("/ru"))
        assert page.charset == "cp1251"
        assert fetcher.fetch(server.url("/none")).charset is None
        assert fetcher.fetch(server.url("/bogus")).charset is None  # not a text encoding
        article = fetch_article(server.url("/ru"), fetcher.settings, fetcher=fetcher)
    assert article.title == "Лавров требует от Запада гарантий безопасности"
    assert "юридически обязывающих гарантий" in article.body


def test_one_public_fetch_article_taking_a_url_and_settings(server: LocalServer, tmp_path: Path) -> None:
    server.add("/harbour", Response(body=ARTICLE_HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"}))
    settings = settings_for(tmp_path)
    article = fetch_article(server.url("/harbour"), settings, ["Coast"])
    assert article.title == "Harbour reopens after storm repairs" and "Coast" in article.tags
    with Fetcher(settings) as fetcher:
        again = fetch_article(server.url("/harbour"), settings, fetcher=fetcher)
    assert again.body == article.body
    with pytest.raises(IngestError, match="non-public"):
        fetch_article("http://10.0.0.1/x", settings_for(tmp_path, fetch_allowed_hosts=[]))


@pytest.mark.parametrize("url", ["ftp://user:s3cret@example.com/a", "http://user:s3cret@example.com/", "gopher://:s3cret@x/"])
def test_credentials_in_urls_are_never_repeated(url: str, tmp_path: Path) -> None:
    with Fetcher(settings_for(tmp_path)) as fetcher, pytest.raises(FetchError) as raised:
        fetcher.fetch(url)
    assert "s3cret" not in str(raised.value) and "user name or password" in str(raised.value)
