"""Raw page text (a page copied or scraped as plain text) to a clean article.

The rules are general, not tied to one site: every line is classified (site chrome, metadata,
headline-like, paragraph), the headline is the line just before the article body (or the one a
page repeats), and the body runs from there to the first end-of-article marker (tags, comments,
related-article lists, footers).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from bot.ingest.dates import find_date, is_date_line
from bot.ingest.fingerprint import clean_text

_WORDS = re.compile(r"\w+", re.UNICODE)
# Chinese and Japanese are written without spaces: a run of ideographs or kana is one \w+ match
# however long, so such characters are counted on their own (see word_count).
_CJK = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d\U00020000-\U0003134f]"
)
CJK_CHARS_PER_WORD = 2  # a Chinese or Japanese word is 1-2 characters long on average
_TERMINAL = (".", "!", "?", "…", '"', "”", "’", "'", ")", "»", ":", ";", "。", "！", "？", "」", "』", "）", "．")
PARAGRAPH_MIN_WORDS = 10
PARAGRAPH_ANY_WORDS = 25
HEADLINE_MAX_WORDS = 40
HEADLINE_MAX_CHARS = 300
SHORT_UI_WORDS = 6
CATEGORY_MAX_WORDS = 3
TAG_LINE_MAX_WORDS = 4
HEADLINE_WINDOW = 4
HEADLINE_MIN_WORDS = 5

# Words and phrases that make up site UI (menus, share bars, buttons, form fields), in
# Indonesian and English. A line made only of these is chrome.
UI_PHRASES = frozenset(
    [
        "menu", "home", "beranda", "index", "indeks", "login", "log", "in", "logout", "sign", "in", "sign", "up",
        "masuk", "keluar", "daftar", "register", "subscribe", "langganan", "berlangganan", "share", "bagikan",
        "sebarkan", "tweet", "facebook", "twitter", "x", "whatsapp", "wa", "telegram", "line", "linkedin", "pinterest",
        "reddit", "instagram", "youtube", "tiktok", "email", "e-mail", "print", "cetak", "copy", "copy", "link",
        "salin", "salin", "tautan", "link", "tautan", "close", "tutup", "next", "previous", "prev", "selanjutnya",
        "sebelumnya", "back", "to", "top", "kembali", "ke", "atas", "skip", "to", "content", "skip", "to", "main",
        "content", "lanjut", "ke", "konten", "advertisement", "iklan", "ads", "ad", "sponsored", "comments", "comment",
        "komentar", "reply", "balas", "like", "suka", "more", "lainnya", "lihat", "semua", "view", "all", "see", "all",
        "read", "more", "selengkapnya", "baca", "selengkapnya", "follow", "us", "ikuti", "kami", "newsletter",
        "trending", "populer", "terpopuler", "terbaru", "latest", "breaking", "news", "berita", "terkini", "news",
        "berita", "video", "videos", "foto", "photo", "photos", "galeri", "gallery", "kanal", "channels", "topik",
        "topics", "search", "cari", "pencarian", "go", "submit", "kirim", "name", "nama", "website", "situs", "web",
        "situs", "url", "send", "loading", "memuat", "load", "more", "muat", "lebih", "banyak", "toggle", "navigation",
        "open", "menu", "buka", "menu", "notifikasi", "notifications", "dark", "mode", "mode", "gelap", "light",
        "mode", "accept", "terima", "setuju", "agree", "cookie", "cookies", "settings", "pengaturan", "download",
        "unduh", "app", "aplikasi",
    ]
) | frozenset(
    {
        "log in", "sign in", "sign up", "copy link", "salin tautan", "back to top", "kembali ke atas",
        "skip to content", "skip to main content", "lanjut ke konten", "lihat semua", "view all",
        "see all", "read more", "baca selengkapnya", "follow us", "ikuti kami", "breaking news",
        "berita terkini", "load more", "muat lebih banyak", "toggle navigation", "open menu",
        "buka menu", "dark mode", "mode gelap", "situs web", "post comment", "kirim komentar",
    }
)
_SEPARATORS = re.compile(r"\s*(?:[|•·»›>/]|\s{2,}|\t)\s*")
_MENU_SEPARATORS = re.compile(r"\s*[|•·]\s*")
_BREADCRUMB_SEPARATORS = re.compile(r"\s*[»›>/]\s*")
_UI_NOISE = re.compile(r"^[\d\s*+()#:.,!?-]*$")

_RE = re.IGNORECASE | re.UNICODE
LOADING = re.compile(r"^(loading|memuat|please wait|mohon tunggu|sedang memuat)\W*$", _RE)
SEARCH_PROMPT = re.compile(
    r"^(\W*(type|ketik|enter|masukkan|tulis|start typing)\b.{0,40}\b(search|cari|mencari|pencarian|kata kunci|keyword)"
    r"|\W*(search|cari|pencarian)\b.{0,30}$|.{0,30}\b(to search|untuk mencari)\W*$)",
    _RE,
)
SHARE_BAR = re.compile(
    r"^(share|bagikan|sebarkan|share this|bagikan artikel|bagikan berita|share on|bagikan ke)\b.{0,50}$", _RE
)
ADS = re.compile(
    r"^\W*(advertisement|advertisment|iklan|ads|sponsored|konten bersponsor|scroll to (continue|resume)"
    r"|scroll (ke bawah )?untuk melanjutkan|lanjutkan (membaca|scroll)|gulir untuk melanjutkan)\b.{0,40}$",
    _RE,
)
# "Baca juga: <headline>" inside an article: the line (and a bare header's list) is dropped.
INLINE_RELATED = re.compile(
    r"^\W*(baca juga|baca pula|read also|also read|lihat juga|simak juga|tonton juga|related|see also|"
    r"read more|more on this|artikel terkait|berita terkait|simak video|tonton video|watch video|watch|"
    r"video)\b\s*(?P<rest>:?.*)$",
    _RE,
)
# Headers that close the article: lists of other stories follow.
END_RELATED = re.compile(
    r"^\W*(related (articles?|stories|posts|news|coverage|topics)|more (from|stories|news)|you may (also )?like|"
    r"recommended( for you| stories)?|rekomendasi( untuk anda| berita)?|terpopuler|most (popular|read|viewed)|"
    r"berita lainnya|berita populer|other news|artikel lainnya|next (article|story)|artikel selanjutnya|"
    r"previous (article|story)|artikel sebelumnya|trending now|populer hari ini|editor'?s picks?|pilihan editor)\b\W*$",
    _RE,
)
COMMENTS = re.compile(
    r"(tinggalkan (komentar|balasan)|leave a (comment|reply)|post (a )?comment|kirim komentar|add a comment|"
    r"tulis komentar|^\d+\s+(comments?|komentar|tanggapan)\W*$|^(comments?|komentar)\s*\(\d+\)|"
    r"your email address will not be published|alamat email anda tidak akan (dipublikasikan|ditampilkan)|"
    r"required fields are marked|ruas yang wajib ditandai|kolom yang wajib|save my name, email|"
    r"simpan nama, email|log ?in to (comment|reply)|login untuk (berkomentar|komentar)|"
    r"comments are closed|komentar ditutup|be the first to comment|jadilah yang pertama)",
    _RE,
)
FOOTER = re.compile(
    r"(^\W*(©|\(c\)|copyright\b|hak cipta\b)|all rights reserved|hak cipta dilindungi|"
    r"^\W*(about us|tentang kami|contact us|kontak kami|hubungi kami|privacy policy|kebijakan privasi|"
    r"terms of (use|service)|syarat (dan|&) ketentuan|pedoman media siber|redaksi|disclaimer|karir|careers"
    r"|info iklan|advertise with us)\W*$)",
    _RE,
)
PROMO = re.compile(
    r"(subscribe to (our|the)\b|sign up for (our|the)\b|newsletter|download (the|our) app|unduh aplikasi|"
    r"we use cookies|kami menggunakan cookie|cookie policy|accept (all )?cookies|"
    r"ikuti (kami|berita|kanal|saluran|update).{0,60}(google news|whatsapp|telegram|instagram)|"
    r"follow us on|dapatkan (update|berita|informasi).{0,60}(whatsapp|telegram|google news)|"
    r"get (the latest|our).{0,60}(inbox|newsletter)|klik di sini untuk|click here to|"
    r"(baca|read) (artikel|berita|the full story|more).{0,50}\b(di|in|on) (aplikasi|the app|our app))",
    _RE,
)
BYLINE = re.compile(
    r"^\W*(by|oleh|penulis|reporter|editor|redaktur|pewarta|writer|author|penyunting|kontributor|"
    r"contributor|sumber|source|laporan wartawan|written by|ditulis oleh|(additional )?reporting by|"
    r"editing by|writing by|compiled by|translated by|penerjemah|alih bahasa)\b\s*:?\s*\S.{0,80}$",
    _RE,
)
CAPTION = re.compile(
    r"(\((foto|photo|image|gambar|dok|doc|ilustrasi|illustration|sumber foto)\s*[:/]|"
    r"^\W*(foto|photo|image|gambar|ilustrasi|illustration|caption|keterangan foto)\s*:|"
    r"getty images|shutterstock|\breuters/|\bap photo|antara foto|\bafp photo|\bafp/)",
    _RE,
)
TAGS_LINE = re.compile(
    r"^\W*(tags?|topik|topics?|label|labels|kata kunci|keywords?|tagged( with)?|ditandai|hashtags?|"
    r"tag terkait|topik terkait)(\s*:\s*(?P<rest>.*)|\s*)$",
    _RE,
)
CATEGORY_LINE = re.compile(
    r"^\W*(kategori|category|categories|rubrik|rubrikasi|section|kanal|filed under)\s*:\s*(?P<rest>.+)$", _RE
)
HASHTAGS = re.compile(r"^(#[\w-]+[\s,]*)+$", _RE)
DATELINE = re.compile(
    r"^(?P<dateline>[A-Z][A-Z.'’&-]+(?:\s+[A-Z][A-Z.'’&-]+){0,3}"
    r"(?:\s*\([^)]{1,40}\))?(?:\s*,\s*[^–—\-\n(]{1,40}?)?(?:\s*\([^)]{1,40}\))?)\s+(?:–|—|-{1,2})\s+\S"
)
# "(aps/dnu)", "(ant/rd)": the initials of writer and editor that close Indonesian reports.
INITIALS = re.compile(
    r"^(\(\s*[a-z]{2,6}(\s*[/,]\s*[a-z]{2,6})+\s*\)|\[\s*[a-z]{2,6}(\s*[/,]\s*[a-z]{2,6})*\s*\])\W*$", re.IGNORECASE
)
LIST_ITEM = re.compile(r"^\s*(\d{1,2}[.)]|[a-z][.)]|[-•*▪●–])\s+\S", re.IGNORECASE)
# Writer initials closing the last paragraph: "... tutup dia. [rnd]".
TRAILING_INITIALS = re.compile(r"(?<=[.!?\"”])\s*[\[(]\s*[a-z]{2,6}(\s*/\s*[a-z]{2,6})*\s*[\])]\s*$", re.IGNORECASE)
GENERIC_CATEGORIES = frozenset(
    {"news", "berita", "home", "beranda", "artikel", "article", "headline", "headlines", "terkini",
     "latest", "utama", "top stories", "blog", "post", "posts", "index", "indeks"}
)  # fmt: skip


class Kind(enum.Enum):
    """What a line of a raw page is."""

    CHROME = "chrome"  # site UI; dropped
    END = "end"  # closes the article (comments, related lists, footers); dropped
    RELATED = "related"  # "Baca juga" inside the article; dropped with its list
    TAGS = "tags"
    HASHTAGS = "hashtags"
    CATEGORY = "category"
    DATE = "date"
    BYLINE = "byline"
    CAPTION = "caption"
    PARAGRAPH = "paragraph"  # article prose
    SENTENCE = "sentence"  # a short line ending like a sentence
    SHORT = "short"  # a headline-like line (no closing punctuation)


@dataclass
class Line:
    text: str
    kind: Kind
    words: int
    value: str = ""  # tags or category text for TAGS/CATEGORY lines; the header rest for RELATED


@dataclass
class ParsedText:
    """An article found in raw page text."""

    title: str | None
    body: str
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    published_at: datetime | None = None
    dateline: str | None = None


def word_count(text: str) -> int:
    """Words in a text; for Chinese and Japanese, one word per two ideographs or kana."""
    cjk = len(_CJK.findall(text))
    if not cjk:
        return len(_WORDS.findall(text))
    return len(_WORDS.findall(_CJK.sub(" ", text))) + -(-cjk // CJK_CHARS_PER_WORD)


def _is_ui(text: str) -> bool:
    items = [item for item in _SEPARATORS.split(text.casefold()) if item and not _UI_NOISE.match(item)]
    if not items:
        return True
    if all(item.strip(" :*.!?") in UI_PHRASES for item in items):
        return True
    # "Facebook Twitter WhatsApp Telegram": single words, all UI.
    words = [word for word in re.split(r"[\s|•·»›>/,]+", text.casefold()) if word and not _UI_NOISE.match(word)]
    return len(words) <= SHORT_UI_WORDS * 2 and all(word.strip(" :*.!?") in UI_PHRASES for word in words)


def _is_menu(text: str) -> bool:
    items = [item for item in _MENU_SEPARATORS.split(text) if item.strip()]
    return len(items) >= 3 and all(word_count(item) <= 3 for item in items)


def split_tag_values(text: str) -> list[str]:
    """Tags listed on one line: separated by commas, semicolons, bars, bullets or '#'."""
    parts = re.split(r"\s*[,;|•·]\s*|\s+(?=#)", text)
    return [part.strip().lstrip("#").strip() for part in parts if part.strip().lstrip("#").strip()]


def classify(text: str) -> Line:
    """Classify one non-empty line of page text."""
    words = word_count(text)
    folded = text.casefold()
    if words == 0:
        return Line(text, Kind.CHROME, 0)
    if match := TAGS_LINE.match(text):
        return Line(text, Kind.TAGS, words, (match["rest"] or "").strip())
    if match := CATEGORY_LINE.match(text):
        return Line(text, Kind.CATEGORY, words, match["rest"].strip())
    if HASHTAGS.match(text):
        return Line(text, Kind.HASHTAGS, words, text)
    if COMMENTS.search(text) or END_RELATED.match(text) or (words <= 12 and FOOTER.search(text)):
        return Line(text, Kind.END, words)
    if (match := INLINE_RELATED.match(text)) and words <= 25:
        return Line(text, Kind.RELATED, words, match["rest"].strip(" :"))
    if LOADING.match(text) or ADS.match(text) or PROMO.search(text):
        return Line(text, Kind.CHROME, words)
    if words <= SHORT_UI_WORDS and (SEARCH_PROMPT.match(text) or SHARE_BAR.match(text) or _is_ui(text)):
        return Line(text, Kind.CHROME, words)
    if _is_menu(text):
        return Line(text, Kind.CHROME, words)
    if words <= 14 and is_date_line(text):
        return Line(text, Kind.DATE, words)
    if words <= 12 and BYLINE.match(text) and not folded.rstrip().endswith((".", "!", "?")):
        return Line(text, Kind.BYLINE, words)
    if INITIALS.match(text):
        return Line(text, Kind.BYLINE, words)
    if words <= 40 and CAPTION.search(text):
        return Line(text, Kind.CAPTION, words)
    ends_like_sentence = TRAILING_INITIALS.sub("", text).rstrip().endswith(_TERMINAL)
    if ends_like_sentence and text.rstrip().endswith(("?", "!", "？", "！")) and _title_case(text):
        return Line(text, Kind.SHORT, words)  # a headline asking a question
    if (words >= PARAGRAPH_MIN_WORDS and ends_like_sentence) or words >= PARAGRAPH_ANY_WORDS:
        return Line(text, Kind.PARAGRAPH, words)
    if ends_like_sentence and not text.rstrip().endswith(":"):
        return Line(text, Kind.SENTENCE, words)
    return Line(text, Kind.SHORT, words)


def _title_case(text: str) -> bool:
    """Most longer words capitalized, as in headlines ("Apa Dampaknya bagi Subsidi BBM?")."""
    long_words = [word for word in re.findall(r"[^\W\d_][\w'’-]*", text) if len(word) > 3]
    if len(long_words) < 2:
        return False
    return sum(word[0].isupper() for word in long_words) / len(long_words) >= 0.6


def _headline_index(lines: list[Line], body_start: int) -> int | None:
    """Index of the headline's last occurrence before the body, or None."""
    candidates = [
        index
        for index in range(body_start)
        if lines[index].kind in (Kind.SHORT, Kind.SENTENCE)
        and lines[index].words <= HEADLINE_MAX_WORDS
        and len(lines[index].text) <= HEADLINE_MAX_CHARS
        and not (
            lines[index].kind is Kind.SENTENCE
            and not lines[index].text.rstrip().endswith(("?", "!", "…", '"', "”", "？", "！", "」"))
        )
    ]
    if not candidates:
        return None
    # Lists of other stories ("Terpopuler", "Related") above the article are not its headline.
    barrier = max((i for i in range(body_start) if lines[i].kind in (Kind.END, Kind.RELATED)), default=-1)
    after = [index for index in candidates if index > barrier]
    candidates = after or candidates
    seen: dict[str, int] = {}
    for index in candidates:
        key = lines[index].text.casefold()
        if key in seen and lines[index].words >= 2:
            # A page that prints the headline twice (page title and article heading).
            return max(i for i in candidates if lines[i].text.casefold() == key)
        seen[key] = index
    # The headline is the nearest full headline-like line above the body; bylines, sources and
    # section names between the two are shorter.
    full = [index for index in candidates if lines[index].words >= HEADLINE_MIN_WORDS]
    if full:
        return full[-1]
    near = [index for index in candidates if lines[index].words >= 3][-HEADLINE_WINDOW:]
    if not near:
        return candidates[-1]
    return max(reversed(near), key=lambda index: lines[index].words)


def _category_before(lines: list[Line], headline: int) -> str | None:
    """A section name printed right above the headline ("Rusia", "News › World")."""
    first = headline
    key = lines[headline].text.casefold()
    for index in range(headline):
        if lines[index].text.casefold() == key:
            first = index
            break
    # Only the line right above the headline: site names and menus sit further up.
    if first == 0:
        return None
    line = lines[first - 1]
    if line.kind is not Kind.SHORT:
        return None
    crumbs = [item for item in _BREADCRUMB_SEPARATORS.split(line.text) if item.strip()]
    if len(crumbs) > 1:
        candidate = crumbs[-1].strip()
    else:
        # One short line alone (not the tail of a menu printed one item per line).
        if _in_short_run(lines, first - 1):
            return None
        candidate = line.text.strip()
    if word_count(candidate) > CATEGORY_MAX_WORDS or candidate.casefold() in GENERIC_CATEGORIES:
        return None
    return candidate


def parse_raw_text(text: str) -> ParsedText:
    """Find headline, body, tags, category, date and dateline in raw page text."""
    cleaned = clean_text(text)  # joins hard-wrapped prose; short UI lines stay separate
    lines = [classify(raw.strip()) for raw in cleaned.split("\n") if raw.strip()]
    paragraphs = [index for index, line in enumerate(lines) if line.kind is Kind.PARAGRAPH]
    body_first = paragraphs[0] if paragraphs else len(lines)

    headline = _headline_index(lines, body_first)
    title = lines[headline].text if headline is not None else None
    category = None
    if headline is not None:
        category = _category_before(lines, headline)
    start = headline + 1 if headline is not None else 0

    # The article ends at the first end marker (or tag line) after its first paragraph.
    end = len(lines)
    for index in range(body_first, len(lines)):
        if lines[index].kind in (Kind.END, Kind.TAGS):
            end = index
            break

    tags: list[str] = []
    published: datetime | None = None
    for index, line in enumerate(lines):
        if line.kind is Kind.CATEGORY and index < end and category is None:
            category = split_tag_values(line.value)[0] if split_tag_values(line.value) else None
        elif line.kind is Kind.TAGS:
            values = split_tag_values(line.value)
            if not values:
                # "Tags:" alone: the tags follow, one short line each.
                for following in lines[index + 1 :]:
                    if following.kind is Kind.SHORT and following.words <= TAG_LINE_MAX_WORDS:
                        values.append(following.text)
                    elif following.kind is Kind.HASHTAGS:
                        values.extend(split_tag_values(following.value))
                    else:
                        break
            tags.extend(values)
        elif line.kind is Kind.HASHTAGS and (index >= end or index >= body_first):
            tags.extend(split_tag_values(line.value))
        elif (line.kind is Kind.DATE and published is None and index < end) or (
            line.kind is Kind.BYLINE and published is None and index < body_first
        ):
            published = find_date(line.text)

    body_lines = _body_lines(lines, start, body_first, end, title)
    body = "\n\n".join(body_lines)
    dateline = None
    for opening in body_lines[:2]:  # a standfirst may come before the dateline paragraph
        if match := DATELINE.match(opening):
            dateline = match["dateline"].strip()
            if published is None:
                published = find_date(dateline)
            break
    if category:
        tags = [category, *(tag for tag in tags if tag.casefold() != category.casefold())]
    return ParsedText(title=title, body=body, tags=tags, category=category, published_at=published, dateline=dateline)


def _body_lines(lines: list[Line], start: int, body_first: int, end: int, title: str | None) -> list[str]:
    """The article's lines between the headline and the end marker, chrome removed."""
    keep_kinds = (Kind.PARAGRAPH, Kind.SENTENCE, Kind.SHORT)
    window = lines[start:end]
    offset = start
    last_prose = max(
        (offset + i for i, line in enumerate(window) if line.kind in (Kind.PARAGRAPH, Kind.SENTENCE)), default=-1
    )
    title_key = title.casefold() if title else None
    result: list[str] = []
    skipping_related = False
    for index in range(start, end):
        line = lines[index]
        if line.kind is Kind.RELATED:
            skipping_related = not line.value  # a bare "Baca juga" header: its list follows
            continue
        if skipping_related and line.kind is Kind.SHORT:
            continue
        skipping_related = False
        if line.kind not in keep_kinds or line.text.casefold() == title_key:
            continue
        if line.kind is Kind.SHORT:
            if index < body_first:
                continue  # standfirst without punctuation, captions
            if index > last_prose and not _continues_prose(lines, last_prose, index):
                continue  # widgets after the article, separated from it by chrome
            if _in_short_run(lines, index):
                continue  # a menu printed one item per line
        if line.kind is Kind.SENTENCE and index < body_first and line.words < 4:
            continue  # "Jakarta." or a lone caption fragment above the article
        result.append(line.text)
    return result


def _continues_prose(lines: list[Line], last_prose: int, index: int) -> bool:
    """Whether every line from the last paragraph to `index` is headline-like text (a closing list)."""
    return last_prose >= 0 and all(
        lines[i].kind is Kind.SHORT and lines[i].words >= 2 for i in range(last_prose + 1, index + 1)
    )


def _in_short_run(lines: list[Line], index: int, run: int = 3) -> bool:
    """Whether the line belongs to `run` or more consecutive one-to-three-word headline-like lines."""
    def tiny(i: int) -> bool:
        return (
            0 <= i < len(lines)
            and lines[i].kind is Kind.SHORT
            and lines[i].words <= 3
            and not LIST_ITEM.match(lines[i].text)  # "1. Pratu Marwan" is content, not a menu
        )

    if not tiny(index):
        return False
    low = index
    while tiny(low - 1):
        low -= 1
    high = index
    while tiny(high + 1):
        high += 1
    return high - low + 1 >= run
