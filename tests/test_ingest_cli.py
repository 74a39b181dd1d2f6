"""`newsbot ingest` and `newsbot feeds` through click, on a real SQLite file (and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli

from fixtures.local_http import LocalServer, Response

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "rusia-garansi-mengikat.txt"


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FETCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def invoke(*args: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]  # returns click's Result
        return runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)

    yield invoke


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_ingest_sample_json_then_duplicate(run) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter `run`
    first = run("ingest", str(SAMPLE), "--json", "--tag", "#Diplomasi")
    assert first.exit_code == 0, first.output
    [record] = lines(first.stdout)
    assert record["title"] == "Bukan Sekadar Janji, Rusia Minta Barat Berikan Garansi Mengikat"
    assert record["tags"] == ["Diplomasi", "Rusia"]
    assert record["lang"] == "id" and record["url"] is None and record["duplicate_of"] is None
    assert record["story_id"] == record["id"] and record["source"] == str(SAMPLE)
    assert "Ketik untuk mencari" not in str(record["body"]) and str(record["body"]).count("\n\n") == 8
    again = run("ingest", str(SAMPLE), "--json")
    assert again.exit_code == 0
    [duplicate] = lines(again.stdout)
    assert duplicate["duplicate_of"] == record["id"] == duplicate["id"]


def test_ingest_folder_stdin_and_url(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter `run`
    folder = tmp_path / "articles"
    shutil.copytree(FIXTURES / "raw", folder)
    html = (FIXTURES / "raw" / "en_wire_service.txt").read_text("utf-8")
    page = "<html><body>" + "".join(f"<p>{line}</p>" for line in html.splitlines()) + "</body></html>"
    with LocalServer() as server:
        server.add("/story", Response(body=page.encode(), headers={"Content-Type": "text/html; charset=utf-8"}))
        result = run("ingest", str(folder), "-", server.url("/story"), "--json", stdin=SAMPLE.read_bytes())
    assert result.exit_code == 0, result.output
    records = lines(result.stdout)
    assert len(records) == 7
    assert [r["source"] for r in records[:5]] == [str(path) for path in sorted(folder.iterdir())]
    assert records[5]["source"] == "-" and records[5]["lang"] == "id"
    url_record = records[6]
    # The same article as the folder's wire story: recognized as a duplicate.
    assert url_record["duplicate_of"] == records[1]["id"]


def test_failures_are_reported_and_others_still_stored(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter `run`
    binary = tmp_path / "photo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    result = run("ingest", str(binary), str(tmp_path / "missing.txt"), str(empty), "http://10.0.0.1/x", str(SAMPLE))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("newsbot ingest:")]
    assert len(errors) == 4
    assert "looks like a PNG image" in errors[0]
    assert "no such file" in errors[1]
    assert "is empty" in errors[2]
    assert "non-public address" in errors[3]
    assert "Traceback" not in result.output
    assert result.stdout.count("stored") == 1


def test_usage_errors_exit_2(run) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter `run`
    assert run("ingest").exit_code == 2
    assert run("ingest", str(SAMPLE), "--tag", "#").exit_code == 2
    assert run("ingest", "-", "-").exit_code == 2


def test_feeds_commands(run) -> None:  # type: ignore[no-untyped-def]  # untyped fixture parameter `run`
    body = "Pemerintah kota membuka taman baru yang luas di tepi sungai untuk warga pada akhir pekan ini. " * 10
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Kota</title>'
        f"<item><guid>k1</guid><title>Taman Baru</title><link>http://example.test/k1</link><category>Kota</category>"
        f"<description>{body}</description></item></channel></rss>"
    )
    with LocalServer() as server:
        server.add("/rss", Response(body=feed.encode(), headers={"Content-Type": "application/rss+xml"}))
        server.add("/broken", Response(500))
        added = run("feeds", "add", server.url("/rss"), "--tag", "Lingkungan")
        assert added.exit_code == 0 and "feed #1" in added.stdout
        assert run("feeds", "add", server.url("/broken")).exit_code == 0
        assert run("feeds", "add", "ftp://x/y").exit_code == 2
        polled = run("feeds", "poll")
        assert polled.exit_code == 1
        assert "1 new" in polled.stdout and "HTTP 500" in polled.stderr
    listing = run("feeds", "list")
    assert listing.exit_code == 0
    assert "#2 [active]" in listing.stdout and "last error: " in listing.stdout and "consecutive failures: 1" in listing.stdout
    assert "tags: Lingkungan" in listing.stdout
    assert run("feeds", "remove", "2").exit_code == 0
    assert run("feeds", "remove", "2").exit_code == 1
    assert "#2" not in run("feeds", "list").stdout


def test_two_processes_ingesting_the_same_article_store_one_row(database_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from sqlalchemy import func, select

    from bot.db import Database
    from bot.db.models import Article

    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "bot", "ingest", str(SAMPLE), "--json"]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err.decode() for _out, err in outputs]
    records = [json.loads(out.decode().strip()) for out, _err in outputs]
    assert len({record["id"] for record in records}) == 1
    assert sorted(record["duplicate_of"] is None for record in records) == [False, True]
    database = Database(database_url)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 1
    database.dispose()


def test_fifo_and_symlink_loop_are_reported_without_hanging(sqlite_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    env = {**os.environ, "DATABASE_URL": sqlite_url, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "bot", "ingest", str(fifo), str(tmp_path / "a"), str(SAMPLE)]
    try:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:  # (subprocess.run has killed it)
        pytest.fail("newsbot ingest hung on a named pipe")
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"newsbot ingest: {fifo} is a named pipe (FIFO), not a regular file (use - to read standard input)",
        f"newsbot ingest: {tmp_path / 'a'}: symbolic link loop",
    ]
    assert done.stdout.decode().count("stored") == 1
