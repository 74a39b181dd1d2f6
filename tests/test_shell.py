"""`newsbot shell` and bare `newsbot` as a user runs them: a subprocess with commands on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import pytest

from bot.config import Settings
from bot.db import Database
from bot.db.migrate import upgrade
from bot.i18n import Html, I18n
from bot.ingest.service import ArticleInput, IngestService
from bot.shell import html_to_text
from bot.tags import TagService

from conftest import following_text, make_settings

REPO = Path(__file__).resolve().parent.parent
BODY = (
    "Russia said on Monday it would demand binding security guarantees before any ceasefire talks. "
    "Officials in Moscow repeated that the proposal must be written into a treaty signed by all sides. "
    "Diplomats in Europe said the demand would make an agreement harder to reach this year."
)


def shell_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env.update(DATABASE_URL=database_url, SUMMARY_MODEL="none", TRANSLATION_MODEL="none", LOG_LEVEL="WARNING",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return env


def newsbot(args: list[str], tmp_path: Path, database_url: str, stdin: str) -> subprocess.CompletedProcess[str]:
    # cwd is the test's folder, so no developer .env is read.
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          cwd=tmp_path, env=shell_env(database_url), timeout=120)


def block(i18n: I18n, lang: str, key: str, **params: object) -> str:
    return html_to_text(i18n.t(lang, key, **params)) + "\n\n"


def following_block(i18n: I18n, lang: str, tag: str, count: int) -> str:
    """/following of one plain tag, with its remove button (Rusia is tag 1: the alias file's first)."""
    button = f"  [{i18n.plain(lang, 'btn.unfollow_query', query=tag)}] @unf:1"
    return html_to_text(following_text(i18n, lang, [(tag, count)])) + "\n" + button + "\n\n"


def test_piped_script_gets_the_same_answers(tmp_path: Path, i18n: I18n) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    script = "/start\n/follow Rusia\n/follow Russia\n/following\n/lang id\n/following\n/nonsense\n"
    done = newsbot(["shell"], tmp_path, url, script)
    assert done.returncode == 0, done.stderr
    expected = "".join([
        block(i18n, "en", "start"),
        block(i18n, "en", "follow.added", tags="Rusia"),
        block(i18n, "en", "follow.already", tags="Rusia"),
        following_block(i18n, "en", "Rusia", 0),
        block(i18n, "id", "lang.done"),
        following_block(i18n, "id", "Rusia", 0),
        block(i18n, "id", "unknown", help=Html(i18n.t("id", "help") + "\n\n" + i18n.t("id", "help.admin"))),
    ])
    assert done.stdout == expected
    # The same database: the shell's chat and follow are stored like a Telegram chat's.
    stats = newsbot(["stats", "--json"], tmp_path, url, "")
    assert json.loads(stats.stdout) == {
        "articles": 0, "chats": 1, "active_chats": 1, "subscriptions": 1, "summaries": 0,
        "deliveries": {"pending": 0, "sending": 0, "sent": 0, "retry": 0, "parked": 0, "cancelled": 0},
    }
    text = newsbot(["stats"], tmp_path, url, "").stdout.splitlines()
    assert text[:2] == ["articles       0", "chats          1 (1 active)"]


def test_quit_ends_the_shell_and_nothing_after_it_runs(tmp_path: Path, i18n: I18n) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    done = newsbot(["shell"], tmp_path, url, "/follow Rusia\n/quit\n/follow Ekonomi\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == block(i18n, "en", "follow.added", tags="Rusia")
    assert json.loads(newsbot(["stats", "--json"], tmp_path, url, "").stdout)["subscriptions"] == 1


def test_bare_newsbot_without_token_opens_the_shell(tmp_path: Path, i18n: I18n) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    done = newsbot([], tmp_path, url, "/start\n")
    assert done.returncode == 0, done.stderr
    assert i18n.plain(None, "shell.no_token") in done.stderr
    assert done.stdout == block(i18n, "en", "start")


def test_run_without_token_explains_and_exits_2(tmp_path: Path, i18n: I18n) -> None:
    done = newsbot(["run"], tmp_path, f"sqlite:///{tmp_path / 'bot.sqlite3'}", "")
    assert done.returncode == 2
    assert "@BotFather" in done.stderr and "TELEGRAM_BOT_TOKEN" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("secret", ["", "has spaces!"])
def test_webhook_without_a_valid_secret_is_refused(tmp_path: Path, i18n: I18n, secret: str) -> None:
    env = shell_env(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    env.update(TELEGRAM_BOT_TOKEN="123:abc", WEBHOOK_URL="https://bot.example.com/hook", WEBHOOK_SECRET=secret)
    done = subprocess.run([sys.executable, "-m", "bot", "run"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert i18n.plain(None, "run.webhook_secret") in done.stderr
    assert "123:abc" not in done.stderr


def _reader(stream: object, lines: Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]  # a text stream, typed object
        lines.put(line)


def _read_until(lines: Queue[str], needle: str, timeout: float = 60.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        try:
            seen += lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except Empty:
            raise AssertionError(f"{needle!r} not printed; got {seen!r}") from None
    return seen


def test_push_appears_while_the_shell_runs(tmp_path: Path, i18n: I18n) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    process = subprocess.Popen([sys.executable, "-m", "bot", "shell"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=shell_env(url))
    lines: Queue[str] = Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    try:
        assert process.stdin is not None
        process.stdin.write("/follow Russia\n")
        process.stdin.flush()
        _read_until(lines, html_to_text(i18n.t("en", "follow.added", tags="Rusia")))
        # Another process (this test) stores an article tagged with an alias of the followed tag.
        settings: Settings = make_settings(url, tmp_path)
        database = Database(url)
        upgrade(database.engine)
        result = IngestService(database, settings, TagService(database, settings)).ingest(
            ArticleInput(body=BODY, title="Russia demands guarantees", tags=["Россия"], lang="en",
                         url="https://example.com/russia")
        )
        database.dispose()
        pushed = _read_until(lines, "🔔 ")
        pushed += _read_until(lines, "@unf:")
        assert "Russia demands guarantees (https://example.com/russia)" in pushed
        assert "Russia said on Monday" in pushed
        assert f":{result.article_id}" in pushed.partition("@unf:")[2]  # the button names the article
        process.stdin.write(f"/summary {result.article_id}\n")
        process.stdin.close()
        assert process.wait(timeout=60) == 0
        rest = ""
        while True:
            try:
                rest += lines.get(timeout=2)
            except Empty:
                break
        assert "Russia said on Monday" in rest
        assert rest.count("🔔") == 0  # pushed once, not again
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("args", [["run"], []], ids=["run", "bare"])
def test_newsbot_run_polls_answers_and_keeps_the_token_out_of_logs(tmp_path: Path, i18n: I18n, args: list[str]) -> None:
    """`newsbot run`, and bare `newsbot` when a token is set, run the Telegram bot."""
    import signal

    from fakebotapi import DEFAULT_TOKEN, FakeBotApi

    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    with FakeBotApi() as server:
        env = shell_env(url)
        env.update(TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN, TELEGRAM_BASE_URL=server.base_url, LOG_LEVEL="DEBUG")
        process = subprocess.Popen([sys.executable, "-m", "bot", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
        try:
            server.user_command(1001, "/start")
            [reply] = server.wait_for_messages(1, 1001, timeout=60)
            assert reply.text == i18n.t("en", "start")
            assert server.my_commands()  # menus were set at start-up
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "getUpdates" in stderr  # DEBUG logs name the API calls...
    assert DEFAULT_TOKEN not in stderr  # ...but never the token
    assert DEFAULT_TOKEN.split(":")[1] not in stderr


def test_pushes_pending_at_end_of_input_are_printed_before_exit(tmp_path: Path, i18n: I18n) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    assert newsbot(["shell"], tmp_path, url, "/follow Rusia\n").returncode == 0
    # Stored while no bot runs: nobody has fanned it out yet.
    settings = make_settings(url, tmp_path)
    database = Database(url)
    IngestService(database, settings, TagService(database, settings)).ingest(
        ArticleInput(body=BODY, title="Russia demands guarantees", tags=["Rusia"], lang="en"))
    database.dispose()
    done = newsbot(["shell"], tmp_path, url, "/following\n")
    assert done.returncode == 0, done.stderr
    reply = following_block(i18n, "en", "Rusia", 1)  # the stored article counts among the last 7 days
    assert reply in done.stdout
    assert done.stdout.count("🔔 ") == 1 and "Russia said on Monday" in done.stdout
    # Delivered once: a third session has nothing more to print.
    assert newsbot(["shell"], tmp_path, url, "").stdout == ""


def test_newsbot_run_waits_for_an_unreachable_bot_api_then_serves(tmp_path: Path, i18n: I18n) -> None:
    """Telegram unreachable at start: one short line per try with a growing pause, no traceback."""
    import signal
    import socket
    import threading

    from fakebotapi import DEFAULT_TOKEN, FakeBotApi

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = shell_env(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    env.update(TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN, TELEGRAM_BASE_URL=f"http://127.0.0.1:{port}/bot")
    process = subprocess.Popen([sys.executable, "-m", "bot", "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, env=env)
    lines: Queue[str] = Queue()
    threading.Thread(target=_reader, args=(process.stderr, lines), daemon=True).start()
    try:
        first = _read_until(lines, "not reachable", timeout=60)
        with FakeBotApi(port=port) as server:
            server.user_command(1001, "/start")
            [reply] = server.wait_for_messages(1, 1001, timeout=60)
            assert reply.text == i18n.t("en", "start")
            # Only the updates a handler handles are asked for: no joins, leaves or reactions.
            [poll, *_] = server.calls("getUpdates")
            assert sorted(poll.params["allowed_updates"]) == ["callback_query", "channel_post", "message", "my_chat_member"]
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.2)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    stderr = first + "".join(rest)
    assert "Traceback" not in stderr
    assert 1 <= stderr.count("not reachable") <= 5
    assert DEFAULT_TOKEN.split(":")[1] not in stderr


def test_newsbot_run_with_a_refused_token_says_so_in_one_line(tmp_path: Path, i18n: I18n) -> None:
    from fakebotapi import FakeBotApi

    with FakeBotApi() as server:
        env = shell_env(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
        env.update(TELEGRAM_BOT_TOKEN="987654321:WRONG-token", TELEGRAM_BASE_URL=server.base_url)
        done = subprocess.run([sys.executable, "-m", "bot", "run"], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"newsbot: {i18n.plain(None, 'run.token_refused')}"
    assert "Traceback" not in done.stderr and "WRONG-token" not in done.stderr
