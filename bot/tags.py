"""Tags: normalized keys, display names, and aliases that make one tag of many spellings."""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db import Database
from bot.db.models import Tag, TagAlias

log = logging.getLogger(__name__)

MAX_TAG_LENGTH = 64
MAX_KEY_LENGTH = 128
DEFAULT_ALIAS_FILE = Path(__file__).resolve().parent / "data" / "tag_aliases.json"
_SEPARATORS = re.compile(r"[\s_]+")
_EDGE_CHARS = " .,;:!?-–—'"
# Characters a tag may not contain: controls (C0, C1), lone surrogates (not storable as UTF-8),
# and punctuation that only makes sense in text.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff<>{}\[\]\\|`\"]")
# Bidi embeddings, overrides and isolates reorder how the rest of a name displays
# ("\u202eaisuR" shows as "Rusia" yet is another string): a tag containing one is refused.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Not format characters (Cf), yet they display as nothing: Hangul fillers, the braille blank.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


class TagError(ValueError):
    """A tag name is empty, too long or has characters a tag cannot have."""


def _trim(name: str) -> str:
    """Leading '#', spaces and punctuation off both ends ('#' stays at the end: "C#")."""
    return name.lstrip("#" + _EDGE_CHARS).rstrip(_EDGE_CHARS)


def strip_invisible(text: str) -> str:
    """`text` without characters that display as nothing.

    Format characters (category Cf: zero-width space/joiner/non-joiner, LTR/RTL marks and
    overrides, BOM, soft hyphen, word joiner, tag characters), variation selectors and blank
    letters, so "Ru\u200bsia" is "Rusia" and an invisible name is empty.
    """
    text = _VARIATION_SELECTORS.sub("", text)
    return "".join(
        char for char in text if char not in _BLANK_LETTERS and unicodedata.category(char) != "Cf"
    )


def clean_tag_name(text: str) -> str:
    """Display form of a tag: NFKC, invisible characters removed, '#' trimmed, underscores and
    runs of spaces made one space ("Ｒｕｓｉａ" and "Ru\u200bsia" both show as "Rusia")."""
    return _trim(_SEPARATORS.sub(" ", strip_invisible(unicodedata.normalize("NFKC", text))))


def normalize_tag(text: str) -> str:
    """Matching key: casefolded, accents stripped, '#' trimmed, spaces collapsed; "" if invalid.

    Invalid: empty or invisible once invisible characters are removed, too long, a control or
    forbidden character, or a bidi override/embedding/isolate anywhere (see BIDI_CONTROLS).
    """
    if any(char in BIDI_CONTROLS for char in text):
        return ""
    name = clean_tag_name(text)
    if not name or len(name) > MAX_TAG_LENGTH or _FORBIDDEN.search(name):
        return ""
    if not any(char.isalnum() for char in name):
        return ""
    # Compatibility forms first ("𝓐" -> "A"), then casefold, then decompose what casefold made.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    stripped = strip_invisible("".join(char for char in decomposed if not unicodedata.combining(char)))
    key = _trim(_SEPARATORS.sub(" ", unicodedata.normalize("NFC", stripped)))
    # Casefolding can lengthen text ("ß" -> "ss", ligatures); the key column holds 128.
    if not key or len(key) > MAX_KEY_LENGTH or _FORBIDDEN.search(key) or not any(c.isalnum() for c in key):
        return ""  # compatibility forms can turn into forbidden characters ("＜" -> "<")
    return key


def load_alias_file(path: Path | None) -> dict[str, list[str]]:
    """Read an alias file: {"tags": {"Rusia": ["Russia", "Россия"], ...}}."""
    if path is None:
        raw = DEFAULT_ALIAS_FILE.read_text("utf-8")
        source = "bot/data/tag_aliases.json"
    else:
        raw = Path(path).read_text("utf-8")
        source = str(path)
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as error:
        raise TagError(f"tag alias file {source} is not valid JSON: {error}") from None
    groups = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(groups, dict):
        raise TagError(f'tag alias file {source} needs an object {{"tags": {{name: [aliases]}}}}')
    result: dict[str, list[str]] = {}
    for name, aliases in groups.items():
        if not isinstance(name, str) or not isinstance(aliases, list):
            raise TagError(f"tag alias file {source}: entry {name!r} must map to a list of names")
        result[name] = [alias for alias in aliases if isinstance(alias, str)]
    return result


class TagService:
    """Finds and creates tags by any spelling; seeds the alias table from the alias file."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._loaded = False
        self._lock = threading.Lock()

    # --- aliases ------------------------------------------------------------------------
    def ensure_aliases_loaded(self) -> None:
        """Seed tag_aliases from the alias file once per process (idempotent in the database)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            groups = load_alias_file(self._settings.tag_aliases_file)
            for attempt in range(3):
                try:
                    with self._db.session() as session:
                        self._seed(session, groups)
                    break
                except IntegrityError:
                    # Another process seeded the same rows at the same moment; look again.
                    if attempt == 2:
                        raise
            self._loaded = True

    def _seed_in(self, session: Session) -> None:
        """Seed inside the caller's transaction; marks loaded only once it commits."""
        groups = load_alias_file(self._settings.tag_aliases_file)
        try:
            with session.begin_nested():
                self._seed(session, groups)
        except IntegrityError:
            return  # another process is seeding; its rows serve us as well

        def _mark(_session: Session) -> None:
            self._loaded = True

        event.listen(session, "after_commit", _mark, once=True)

    @staticmethod
    def _seed(session: Session, groups: dict[str, list[str]]) -> None:
        tag_ids: dict[str, int] = dict(session.execute(select(Tag.key, Tag.id)).all())
        alias_tag: dict[str, int] = dict(session.execute(select(TagAlias.key, TagAlias.tag_id)).all())
        # New tags first, in one batch, so their ids exist for the aliases.
        new_tags: dict[str, Tag] = {}
        for name in groups:
            key = normalize_tag(name)
            if not key:
                log.warning("tag alias file: skipping invalid tag name %r", name)
            elif key not in tag_ids and key not in alias_tag and key not in new_tags:
                new_tags[key] = Tag(key=key, name=clean_tag_name(name))
        if new_tags:
            session.add_all(new_tags.values())
            session.flush()
            tag_ids.update({key: tag.id for key, tag in new_tags.items()})
        for name, aliases in groups.items():
            key = normalize_tag(name)
            tag_id = tag_ids.get(key) or alias_tag.get(key)
            if tag_id is None:
                continue
            for alias in aliases:
                alias_key = normalize_tag(alias)
                # A spelling that is already a tag of its own stays one (admins can merge).
                if not alias_key or alias_key in tag_ids or alias_key in alias_tag:
                    continue
                session.add(TagAlias(key=alias_key, name=clean_tag_name(alias), tag_id=tag_id))
                alias_tag[alias_key] = tag_id
        session.flush()

    # --- lookup -------------------------------------------------------------------------
    def resolve(self, session: Session, name: str) -> Tag | None:
        """The tag `name` means (directly or through an alias), or None; creates nothing."""
        if not self._loaded:
            self._seed_in(session)
        key = normalize_tag(name)
        if not key:
            return None
        return self._by_key(session, key)

    @staticmethod
    def _by_key(session: Session, key: str) -> Tag | None:
        tag = session.scalars(select(Tag).where(Tag.key == key)).one_or_none()
        if tag is not None:
            return tag
        return session.scalars(
            select(Tag).join(TagAlias, TagAlias.tag_id == Tag.id).where(TagAlias.key == key)
        ).one_or_none()

    def get_or_create(self, session: Session, name: str) -> Tag:
        """The tag `name` means; created with `name` as display name when it is new."""
        if not self._loaded:
            self._seed_in(session)
        key = normalize_tag(name)
        if not key:
            if any(char in BIDI_CONTROLS for char in name):
                raise TagError(f"invalid tag {name[:80]!r}: it contains text-direction control characters")
            raise TagError(
                f"invalid tag {name[:80]!r}: use 1-{MAX_TAG_LENGTH} letters, digits and spaces"
            )
        tag = self._by_key(session, key)
        if tag is not None:
            return tag
        try:
            with session.begin_nested():
                tag = Tag(key=key, name=clean_tag_name(name))
                session.add(tag)
        except IntegrityError:
            # A concurrent writer created it between our look-up and insert.
            existing = self._by_key(session, key)
            if existing is None:
                raise
            return existing
        return tag
