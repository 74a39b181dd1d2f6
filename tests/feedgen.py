"""Generated test feeds: RSS 0.91/2.0, Atom 1.0, RDF/RSS 1.0, in several encodings and sizes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

WORDS = [
    "pemerintah", "kota", "jalan", "kereta", "bandara", "rencana", "anggaran", "dewan", "warga", "pasar", "harga",
    "beras", "listrik", "air", "sekolah", "rumah", "sakit", "banjir", "hujan", "sungai", "jembatan", "pelabuhan",
    "kapal", "nelayan", "petani", "panen", "pupuk", "pabrik", "buruh", "upah", "pajak", "bank", "bunga", "inflasi",
    "ekspor", "impor", "minyak", "gas", "tambang", "hutan", "kebun", "sawit", "kopi", "teh", "gula", "garam", "ikan",
]
BASE_TIME = datetime(2024, 3, 5, 3, 0, tzinfo=UTC)


def body_words(seed: int, count: int = 95) -> str:
    """A distinct, long-enough (not a teaser) body for entry `seed`."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(count)]
    sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, count, 12)]
    return f"Laporan nomor {seed}. " + " ".join(sentences)


def entry_time(index: int) -> datetime:
    return BASE_TIME + timedelta(minutes=index)


def rss20_items(indexes: list[int], *, link_base: str = "http://news.test/a/") -> str:
    return "".join(
        f"<item><title>Berita {i}</title><link>{link_base}{i}</link><guid isPermaLink=\"false\">id-{i}</guid>"
        f"<pubDate>{format_datetime(entry_time(i))}</pubDate><category>Topik {i % 3}</category>"
        f"<description><![CDATA[<p>{body_words(i)}</p>]]></description></item>"
        for i in indexes
    )


def rss20(items: str, *, title: str = "Warta Contoh", link: str = "http://news.test/", extra: str = "") -> bytes:
    channel_link = f"<link>{link}</link>" if link else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"{extra}><channel><title>{title}</title>'
        f"{channel_link}<description>d</description>{items}</channel></rss>"
    ).encode()


def big_rss(count: int, seed: int = 7) -> bytes:
    """`count` entries in shuffled date order (feeds are not always sorted)."""
    indexes = list(range(count))
    random.Random(seed).shuffle(indexes)
    return rss20(rss20_items(indexes))


def rss091_latin1() -> bytes:
    """RSS 0.91 with Netscape's DOCTYPE, HTML entities from its DTD, latin-1 bytes."""
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        '<rss version="0.91"><channel><title>Caf\u00e9 Nouvelles</title><link>http://fr.test/</link>'
        "<description>d</description><language>fr</language>"
        "<item><title>R&eacute;forme des retraites &amp; gr&egrave;ve</title><link>http://fr.test/art/1</link>"
        f"<description>{body_words(91)} Caf\u00e9 cr\u00e8me &agrave; la gare &ndash; fin.</description></item>"
        "</channel></rss>"
    )
    return text.encode("latin-1", "xmlcharrefreplace")


def rss20_relative_and_enclosures() -> bytes:
    """Relative links (against the channel link), a non-URL guid, enclosures, CDATA with HTML."""
    items = (
        "<item><title>Relatif</title><link>/berita/relatif-1</link><guid>abc-123</guid>"
        f'<enclosure url="media/a.mp3" length="100" type="audio/mpeg"/><pubDate>{format_datetime(entry_time(2))}</pubDate>'
        f"<description><![CDATA[<h2>Sub</h2><p>{body_words(201)}</p><script>alert(1)</script>"
        "<p>Akhir <b>tebal</b>.</p>]]></description></item>"
        # guid only, not a URL: it is the guid, not the link
        f"<item><title>Tanpa tautan</title><guid>urn:uuid:5e1f-77</guid><pubDate>{format_datetime(entry_time(1))}</pubDate>"
        f"<description>&lt;p&gt;{body_words(202)}&lt;/p&gt;</description></item>"
        # a guid that is a URL and no link: the guid is the link
        f"<item><title>Guid URL</title><guid>http://news.test/g/3</guid><pubDate>{format_datetime(entry_time(0))}</pubDate>"
        f"<description>{body_words(203)}</description></item>"
    )
    return rss20(items, link="http://news.test/kanal/")


def atom_xml_base() -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://atom.test/root/">'
        "<title>Atom Basis</title><id>urn:feed</id><updated>2024-03-05T03:00:00Z</updated>"
        '<entry xml:base="bagian/"><title type="html">Judul &lt;em&gt;satu&lt;/em&gt;</title><id>urn:entry:1</id>'
        '<link rel="alternate" href="satu.html"/><link rel="enclosure" href="foto.jpg" type="image/jpeg"/>'
        f'<updated>2024-03-05T04:00:00Z</updated><category term="Ekonomi"/><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>{body_words(301)}</p></div></content></entry>'
        '<entry><title>Dua</title><id>urn:entry:2</id><link href="/mutlak/dua"/>'
        f"<updated>2024-03-05T05:00:00Z</updated><summary>{body_words(302)}</summary></entry>"
        "</feed>"
    ).encode()


def rdf_rss10() -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<channel rdf:about="http://rdf.test/"><title>RDF Kanal</title><link>http://rdf.test/</link><description>d</description></channel>'
        '<item rdf:about="http://rdf.test/r/1"><title>Satu RDF</title><link>http://rdf.test/r/1</link>'
        f"<description>{body_words(401)}</description><dc:date>2024-03-05T10:00:00Z</dc:date><dc:subject>Lingkungan</dc:subject></item>"
        "</rdf:RDF>"
    ).encode()


def cp1251_without_declaration() -> bytes:
    """Windows-1251 bytes and no encoding in the XML: only the HTTP charset says so."""
    body = " ".join(["Правительство объявило о новых мерах поддержки экономики и сельского хозяйства."] * 10)
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Новости</title><link>http://ru.test/</link>'
        f"<description>d</description><item><title>Россия и экономика</title><link>http://ru.test/n/1</link>"
        f"<category>Экономика</category><description>{body}</description></item></channel></rss>"
    ).encode("cp1251")
