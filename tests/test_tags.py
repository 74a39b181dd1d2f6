"""Tags: normalization, aliases from the data file, and look-ups on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.db import Database
from bot.db.models import Tag, TagAlias
from bot.tags import DEFAULT_ALIAS_FILE, MAX_TAG_LENGTH, TagError, TagService, load_alias_file, normalize_tag
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
    with database.session() as session:
        with pytest.raises(TagError):
            service.get_or_create(session, "#")


def test_alias_seeding_is_idempotent_across_services(database: Database, settings: Settings) -> None:
    TagService(database, settings).ensure_aliases_loaded()
    with database.session() as session:
        counts = (session.scalar(select(func.count()).select_from(Tag)), session.scalar(select(func.count()).select_from(TagAlias)))
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
