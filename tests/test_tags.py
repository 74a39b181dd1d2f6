"""Tags: normalization, aliases from the data file, and look-ups on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Tag, TagAlias
from bot.tags import DEFAULT_ALIAS_FILE, MAX_TAG_LENGTH, TagError, TagService, clean_tag_name, load_alias_file, normalize_tag

from conftest import make_settings


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Rusia", "rusia"),
        ("#rusia", "rusia"),
        ("  ##RUSIA  ", "rusia"),
        ("Timur_Tengah", "timur tengah"),
        ("Timur   Tengah", "timur tengah"),
        ("Côte d’Ivoire", "cote d’ivoire"),
        ("São Paulo", "sao paulo"),
        ("Россия", normalize_tag("РОССИЯ")),
        ("Straße", "strasse"),
    ],
)
def test_normalize_tag_folds_case_accents_hash_and_spaces(raw: str, key: str) -> None:
    assert normalize_tag(raw) == key


@pytest.mark.parametrize("raw", ["", "   ", "#", "###", "...", "a" * (MAX_TAG_LENGTH + 1), "bad\x00tag", "<b>"])
def test_normalize_tag_rejects_invalid_names(raw: str) -> None:
    assert normalize_tag(raw) == ""


def test_normalize_tag_accepts_the_length_limit() -> None:
    assert normalize_tag("a" * MAX_TAG_LENGTH) == "a" * MAX_TAG_LENGTH


def test_shipped_alias_file_is_valid_and_has_no_conflicting_keys() -> None:
    groups = load_alias_file(None)
    assert len(groups) >= 80
    owner: dict[str, str] = {}
    for name, aliases in groups.items():
        for spelling in [name, *aliases]:
            key = normalize_tag(spelling)
            assert key, spelling
            assert owner.setdefault(key, name) == name, f"{spelling!r} belongs to {owner[key]!r} and {name!r}"
    assert {"Russia", "Россия"} <= set(groups["Rusia"])


def test_aliases_make_one_tag_of_several_spellings(database: Database, settings: Settings) -> None:
    service = TagService(database, settings)
    service.ensure_aliases_loaded()
    with database.session() as session:
        ids = {service.get_or_create(session, name).id for name in ["Rusia", "#russia", "Россия", "RUSIA"]}
        assert len(ids) == 1
        assert service.resolve(session, "Russland").name == "Rusia"
        assert service.resolve(session, "Atlantis") is None
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Tag).where(Tag.key == "atlantis")) == 0


def test_get_or_create_creates_new_tags_once_with_display_name(database: Database, settings: Settings) -> None:
    service = TagService(database, settings)
    with database.session() as session:
        first = service.get_or_create(session, "#Pilkada_Jakarta")
        again = service.get_or_create(session, "pilkada jakarta")
        assert first.id == again.id
        assert first.name == "Pilkada Jakarta"
    with database.session() as session, pytest.raises(TagError):
        service.get_or_create(session, "#")


def test_alias_seeding_is_idempotent_across_services(database: Database, settings: Settings) -> None:
    TagService(database, settings).ensure_aliases_loaded()
    with database.session() as session:
        counts = (
            session.scalar(select(func.count()).select_from(Tag)),
            session.scalar(select(func.count()).select_from(TagAlias)),
        )
    TagService(database, settings).ensure_aliases_loaded()
    with database.session() as session:
        assert counts == (
            session.scalar(select(func.count()).select_from(Tag)),
            session.scalar(select(func.count()).select_from(TagAlias)),
        )
    assert counts[1] > counts[0] > 50


def test_lookup_without_explicit_seeding_still_knows_aliases(database: Database, settings: Settings) -> None:
    service = TagService(database, settings)
    with database.session() as session:
        assert service.get_or_create(session, "Russia").name == "Rusia"


def test_custom_alias_file_replaces_the_starter_list(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "aliases.json"
    path.write_text(json.dumps({"tags": {"Sepak Bola": ["Football", "Soccer"]}}), "utf-8")
    settings = make_settings(database.url, tmp_path, tag_aliases_file=path)
    service = TagService(database, settings)
    service.ensure_aliases_loaded()
    with database.session() as session:
        assert service.resolve(session, "soccer").name == "Sepak Bola"
        assert service.resolve(session, "Russia") is None


def test_broken_alias_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "aliases.json"
    path.write_text("{not json", "utf-8")
    with pytest.raises(TagError, match="not valid JSON"):
        load_alias_file(path)
    path.write_text(json.dumps(["Rusia"]), "utf-8")
    with pytest.raises(TagError, match="needs an object"):
        load_alias_file(path)


def test_default_alias_file_is_packaged_with_bot() -> None:
    assert DEFAULT_ALIAS_FILE.is_file()


@pytest.mark.parametrize(
    ("raw", "same_as"),
    [
        ("Ru\u200bsia", "Rusia"),  # zero-width space
        ("\ufeffRusia", "Rusia"),  # BOM
        ("Ru\u200dsia\u200c", "Rusia"),  # zero-width joiner / non-joiner
        ("\u200eRusia\u200f", "Rusia"),  # LTR / RTL marks
        ("Ru\u00adsia", "Rusia"),  # soft hyphen
        ("Ru\u2060sia", "Rusia"),  # word joiner
        ("Ｒｕｓｉａ", "Rusia"),  # fullwidth forms (NFKC)
        ("Ru\ufe0fsia", "Rusia"),  # variation selector
        ("Timur\u200b Tengah", "Timur Tengah"),
    ],
)
def test_invisible_and_compatibility_characters_do_not_make_another_tag(raw: str, same_as: str) -> None:
    assert normalize_tag(raw) == normalize_tag(same_as) != ""
    assert clean_tag_name(raw) == same_as


@pytest.mark.parametrize(
    "raw",
    ["\u200b", "\u200b\u200c\u200d", "\ufeff", "#\u200b", "\u3164", "\u2800\u2800", "\u200e\u200f", "\u00ad", "\ufe0f"],
)
def test_invisible_only_names_are_refused(raw: str) -> None:
    assert normalize_tag(raw) == ""


@pytest.mark.parametrize("raw", ["\u202eaisuR", "Rusia\u202e", "\u202dRusia\u202c", "\u2067Rusia\u2069", "\u202bRusia"])
def test_bidi_overrides_and_isolates_are_refused(raw: str) -> None:
    assert normalize_tag(raw) == ""


def test_tag_service_refuses_bidi_and_invisible_and_folds_zero_width(database: Database, settings: Settings) -> None:
    service = TagService(database, settings)
    with database.session() as session:
        plain = service.get_or_create(session, "Pilkada")
        assert service.get_or_create(session, "Pil\u200bkada").id == plain.id
        assert service.resolve(session, "\ufeffpilkada\u200d").id == plain.id  # type: ignore[union-attr]  # resolves: the tag was just created
        with pytest.raises(TagError, match="text-direction"):
            service.get_or_create(session, "\u202eadaklip")
        with pytest.raises(TagError):
            service.get_or_create(session, "\u200b\u200b")
        new = service.get_or_create(session, "Ba\u200bru\u200f")
        assert new.name == "Baru"  # the stored display name carries no invisible characters
    with database.session() as session:
        names = session.scalars(select(Tag.name)).all()
        assert all(not any(ch in name for ch in "\u200b\u200f\u202e\ufeff") for name in names)


def test_lone_surrogates_and_c1_controls_are_refused() -> None:
    assert normalize_tag("Rusia\ud800") == ""
    assert normalize_tag("Ru\x85sia") == normalize_tag("Ru sia")  # NEL is whitespace: one space
    assert normalize_tag("Ru\x9bsia") == ""
