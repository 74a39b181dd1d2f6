"""`newsbot run` killed (SIGKILL) while digests are being sent, then started again: every story
reaches every reader exactly once, inside its digest (never also as an instant push), and only
the parts of a digest not yet recorded are sent again (on SQLite and on PostgreSQL).

Deterministic: the stories are fanned out beforehand with a clock an hour back, so each chat's
hourly digest is already due when the bot starts; the fake Bot API accepts two messages, then
lets every further sendMessage hang; we kill the bot once those two are recorded as sent parts.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from test_push_e2e_restart import wait_until

from bot.db import Database
from bot.db.models import Chat, Delivery, DeliveryStatus, Digest
from bot.services.fanout import FanoutService

from conftest import make_settings
from fakebotapi import FakeBotApi
from test_fanout import World

READERS = [201, 202, 203]
STORIES = 14  # about three messages per digest
_VOCABULARY = ("harga beras jagung kedelai minyak listrik tarif kereta bandara pelabuhan sekolah guru rumah sakit dokter "
         "petani nelayan hujan banjir gempa gunung pantai kota desa jalan tol jembatan pasar saham bank rupiah "
         "ekspor impor pajak anggaran menteri presiden gubernur bupati polisi hakim sidang partai pemilu suara "
         "kampanye sepak bola pelatih pemain stadion tiket musik film buku teknologi internet telepon data")
WORDS = _VOCABULARY.split()


def body(seed: int) -> str:
    """Five sentences of words unlike any other story's (so no two are linked as one story)."""
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + "." for _ in range(5))


def start_bot(server: FakeBotApi, database_url: str, workdir: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(workdir), "TELEGRAM_BOT_TOKEN": server.token,
           "TELEGRAM_BASE_URL": server.base_url, "SUMMARY_MODEL": "none", "TRANSLATION_MODEL": "none", "BROKER_URL": "",
           "LOG_LEVEL": "INFO", "PYTHONPATH": str(root)}
    log = open(workdir / "bot.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=workdir, env=env, stdout=log, stderr=log)


def parts_recorded(db: Database) -> int:
    with db.session() as session:
        return sum(len(ids or []) for ids in session.scalars(select(Digest.message_ids)))


def count(db: Database, status: DeliveryStatus) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == status)) or 0


def test_killed_mid_digest_loses_nothing_and_doubles_nothing(fake_bot_api: FakeBotApi, database_url: str,
                                                            tmp_path: Path) -> None:
    db = Database(database_url)
    world = World(db, make_settings(database_url, tmp_path))
    for chat_id in READERS:
        world.chat(chat_id, "Rusia")
    with db.session() as session:
        session.execute(update(Chat).values(digest="hourly"))
    titles = [f"Berita {index} {WORDS[index]}" for index in range(STORIES)]
    for index, title in enumerate(titles):
        world.ingest(["Rusia"], body=body(index), title=title)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    fanout = FanoutService(db, clock=lambda: an_hour_ago)
    while fanout.run_once().articles:
        pass
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == len(READERS)
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.digest_id.is_(None))) == 0

    fake_bot_api.hold_sends(after=2)
    first = start_bot(fake_bot_api, database_url, tmp_path)
    try:
        wait_until(lambda: parts_recorded(db) == 2 and fake_bot_api.held_requests() >= 1, 60,
                   "two digest parts recorded as sent and more hanging")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    wait_until(lambda: fake_bot_api.held_requests() == 0, 10, "hanging requests to be dropped")
    assert len(fake_bot_api.sent_messages()) == 2
    assert count(db, DeliveryStatus.SENT) == 0  # no digest finished: none of its stories counts as sent yet

    fake_bot_api.release_sends()
    second = start_bot(fake_bot_api, database_url, tmp_path)
    try:
        wait_until(lambda: count(db, DeliveryStatus.SENT) == len(READERS) * STORIES, 60, "every story sent")
        time.sleep(0.5)  # room for a stray duplicate to arrive
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()

    with db.session() as session:
        digests = session.execute(select(Digest.chat_id, Digest.status, Digest.message_ids)).all()
    assert {(chat_id, DeliveryStatus(status)) for chat_id, status, _ in digests} == {
        (chat_id, DeliveryStatus.SENT) for chat_id in READERS}
    for chat_id in READERS:
        messages = fake_bot_api.sent_messages(chat_id)
        assert len(messages) >= 2  # a digest of 14 stories takes several messages
        recorded = next(ids for owner, _, ids in digests if owner == chat_id)
        assert [m.message_id for m in messages] == recorded  # every part once, in order, none re-sent
        text = "\n".join(m.text for m in messages)
        for title in titles:
            assert text.count(title) == 1, (chat_id, title)
    db.dispose()
