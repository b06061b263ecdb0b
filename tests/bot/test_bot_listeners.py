"""Listeners end to end against the fake Bot API: 👍/👎 with undo, /likes, /forme, /history, /forget, /export,
ratings that survive a restart and a kill -9, and a database that fails without stopping recommendations."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import re
import signal
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from botkit import ADMIN, OTHER_USER, TOKEN, USER, BotFactory, BotProcess
from fake_telegram import ChatMessage, FakeTelegram

from bot import formatting as fmt
from bot import personal
from bot.app import PRUNE_JOB
from bot.db import RatingStore

pytestmark = pytest.mark.usefixtures("no_violations")

SPOTIFY = re.compile(r'<a href="https://open\.spotify\.com/track/([A-Za-z0-9]+)">')


def _song(csv_path: Path, n: int = 0) -> str:
    """The title of a track no other track shares: naming it is a clear match."""
    tracks = pd.read_csv(csv_path, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    counts = tracks["track_name"].value_counts()
    return str(tracks[tracks["track_name"].map(counts) == 1].iloc[n]["track_name"])


def _listed(message: ChatMessage) -> list[str]:
    """Track ids of the numbered songs of an answer (the first link of a song answer is its seed)."""
    ids = SPOTIFY.findall(message.text)
    return ids[1:] if message.text.startswith("🎧") else ids


def _button(message: ChatMessage, label: str) -> str:
    return next(d for text, d in message.buttons() if text == label)


async def _rate(
    telegram: FakeTelegram, message: ChatMessage, label: str, user_id: int | None = None
) -> tuple[str, ChatMessage]:
    """Tap a 👍/👎 button: (the pop-up text, the message as it stands after the bot changed its buttons)."""
    since = telegram.mark()
    current = telegram.messages[(message.chat_id, message.message_id)]
    query_id = await telegram.tap(current, _button(current, label), user_id=user_id)
    await telegram.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id, since=since
    )
    popup = telegram.callbacks_text(query_id)
    if popup != personal.NOT_SAVED:
        await telegram.wait_for(
            lambda c: c.method == "editMessageReplyMarkup" and c.params.get("message_id") == message.message_id,
            since=since,
        )
    return popup, telegram.messages[(message.chat_id, message.message_id)]


def _labels(message: ChatMessage) -> list[str]:
    return [text for text, _ in message.buttons()]


def _db(workdir: Path) -> RatingStore:
    return RatingStore(f"sqlite:///{workdir / 'listeners.db'}")


async def test_like_shows_a_tick_and_a_second_tap_undoes_it(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        first = _listed(answer)[0]
        popup, answer = await _rate(telegram, answer, "👍1")
        assert popup.startswith("👍 Liked") and "👍1 ✓" in _labels(answer)
        assert _db(workdir).ratings_of(USER) == {first: 1}  # committed before the button changed
        # 👎 on the same song replaces the like; 👎 again removes the rating.
        _, answer = await _rate(telegram, answer, "👎1")
        assert "👎1 ✓" in _labels(answer) and "👍1" in _labels(answer)
        assert _db(workdir).ratings_of(USER) == {first: -1}
        popup, answer = await _rate(telegram, answer, "👎1 ✓")
        assert popup == "Rating removed" and "👎1" in _labels(answer)
        assert _db(workdir).ratings_of(USER) == {}


async def test_likes_are_listed_newest_first_paged_and_removable(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        *_, (_, more) = answer.buttons()
        _, page2 = await telegram.press(answer, more)
        page2_message = telegram.message_of(page2)
        for message, ranks in ((answer, range(1, 11)), (page2_message, range(11, 13))):
            for rank in ranks:
                await _rate(telegram, message, f"👍{rank}")
        liked = _listed(answer) + _listed(page2_message)[:2]  # in the order they were liked
        likes = await telegram.ask(USER, "/likes")
        assert "1–10 of 12, newest first" in likes.text
        assert SPOTIFY.findall(likes.text) == liked[::-1][:10]
        _, older = await telegram.press(likes, _button(likes, "Older ▸"))
        assert SPOTIFY.findall(telegram.message_of(older).text) == liked[::-1][10:]
        # ✖ removes a like in place; tapping it twice does not like the song again.
        page = telegram.message_of(older)
        unlike = _button(page, "✖11")
        _, after = await telegram.press(page, unlike)
        assert "of 11" in telegram.message_of(after).text
        query_id = await telegram.tap(telegram.message_of(after), unlike, force=True)
        await telegram.wait_for(lambda c: c.params.get("callback_query_id") == query_id)
        assert telegram.callbacks_text(query_id) == "Already removed"
        assert liked[1] not in _db(workdir).ratings_of(USER) and len(_db(workdir).ratings_of(USER)) == 11


async def test_forme_recommends_from_likes_and_dislikes_with_a_reason(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        assert (await telegram.ask(USER, "/forme")).text == personal.NO_LIKES_YET
        answer = await telegram.ask(USER, _song(demo_csv))
        listed = _listed(answer)
        for label in ("👍1", "👍2", "👍3", "👎4"):
            await _rate(telegram, answer, label)
        forme = await telegram.ask(USER, "/forme")
        picks = SPOTIFY.findall(forme.text)
        assert len(picks) == 10 and len(set(picks)) == 10
        assert not set(picks) & set(listed[:4])  # rated songs are never offered again
        assert forme.text.count("because you liked") == 10
        assert [b for b, _ in forme.buttons()][:2] == ["👍1", "👎1"]
        # A rating under /forme counts like any other; "More for me" ranks what was just shown lower.
        _, again = await telegram.press(forme, _button(forme, "🎯 More for me"))
        more_picks = SPOTIFY.findall(telegram.message_of(again).text)
        assert len(set(more_picks) - set(picks)) >= 5
    requests = _db(workdir).history_of(USER)
    assert [r.kind for r in requests][:2] == ["forme", "forme"]


async def _recorded(workdir: Path, requests: int) -> None:
    for _ in range(100):
        if len(_db(workdir).history_of(USER)) >= requests:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {requests} requests were recorded")


async def test_history_lists_requests_newest_first_one_tap_from_their_answer(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        assert (await telegram.ask(USER, "/history")).text == personal.HISTORY_EMPTY
        first, second = _song(demo_csv, 0), _song(demo_csv, 1)
        await telegram.ask(USER, first)
        await telegram.ask(USER, second)
        await _recorded(workdir, 2)  # requests are recorded right after the answer is sent
        history = await telegram.ask(USER, "/history")
        assert history.text.index(second) < history.text.index(first)
        _, answer = await telegram.press(history, _button(history, "2"))
        assert telegram.message_of(answer).text.startswith("🎧") and first in telegram.message_of(answer).text


async def test_forget_asks_first_then_deletes_everything_about_me_only(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        for user in (USER, OTHER_USER):
            answer = await telegram.ask(user, _song(demo_csv))
            await _rate(telegram, answer, "👍1", user)
        question = await telegram.ask(USER, "/forget")
        _, cancelled = await telegram.press(question, _button(question, "Cancel"))
        assert telegram.message_of(cancelled).text == personal.FORGET_CANCELLED
        assert _db(workdir).ratings_of(USER)
        question = await telegram.ask(USER, "/forget")
        _, done = await telegram.press(question, _button(question, "Yes, delete everything"))
        assert "deleted everything" in telegram.message_of(done).text
        assert (await telegram.ask(USER, "/likes")).text == personal.LIKES_EMPTY
    store = _db(workdir)
    assert store.ratings_of(USER) == {} and store.history_of(USER) == []
    assert store.ratings_of(OTHER_USER)  # someone else's data stays
    assert str(USER) not in store.for_training(min_likes=1) and str(OTHER_USER) in store.for_training(min_likes=1)


async def test_export_sends_my_data_as_a_csv_document(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    async with run_bot():
        assert (await telegram.ask(USER, "/export")).text == personal.NOTHING_STORED
        for user in (USER, OTHER_USER):
            answer = await telegram.ask(user, _song(demo_csv))
            await _rate(telegram, answer, "👍2", user)
        liked = _listed(answer)[1]
        since = telegram.mark()
        await telegram.send_text(USER, "/export")
        await telegram.wait_for(lambda c: c.method == "sendDocument" and c.ok, since=since)
        [(chat_id, filename, content)] = telegram.documents
        assert chat_id == USER and filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
        ratings = [r for r in rows if r["record"] == "rating"]
        assert [(r["track_id"], r["value"]) for r in ratings] == [(liked, "1")]
        assert str(OTHER_USER) not in content.decode("utf-8")


async def test_ratings_survive_a_restart_and_status_counts_listeners(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        await _rate(telegram, answer, "👍1")
    async with run_bot():
        likes = await telegram.ask(USER, "/likes")
        assert SPOTIFY.findall(likes.text) == _listed(answer)[:1]
        status = await telegram.ask(ADMIN, "/status")
        assert "Listeners: 1, ratings: 1" in status.text
        again = await telegram.ask(USER, _song(demo_csv))
        assert "👍1 ✓" in [b for b, _ in again.buttons()]  # my rating shows under a new answer of the same song


async def test_a_locked_database_keeps_recommendations_answering(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        lock = sqlite3.connect(workdir / "listeners.db", timeout=0.1)
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the database beyond the store's busy timeout
        try:
            popup, _ = await _rate(telegram, answer, "👍1")
            assert popup == personal.NOT_SAVED
            reply = await telegram.ask(USER, _song(demo_csv, 1), timeout=30)
            assert reply.text.startswith("🎧")  # recommendations do not wait for the database
        finally:
            lock.rollback()
            lock.close()
        assert _db(workdir).ratings_of(USER) == {}


async def test_a_corrupt_database_at_start_keeps_recommendations_answering(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    (workdir / "listeners.db").write_bytes(b"this is not a database" * 100)
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        assert answer.text.startswith("🎧")
        popup, _ = await _rate(telegram, answer, "👍1")
        assert popup == personal.NOT_SAVED
        assert "unavailable" in (await telegram.ask(ADMIN, "/status")).text


async def test_fifty_listeners_rating_at_once_all_land(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    users = list(range(50_000, 50_050))
    async with run_bot():
        answers = await asyncio.gather(*(telegram.ask(u, _song(demo_csv)) for u in users))
        await asyncio.gather(*(_rate(telegram, a, "👍3", u) for u, a in zip(users, answers, strict=True)))
    store = _db(workdir)
    assert store.counts() == (50, 50)
    assert all(store.ratings_of(u) == {_listed(a)[2]: 1} for u, a in zip(users, answers, strict=True))


async def test_backup_is_for_admins_and_writes_a_usable_copy(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        answer = await telegram.ask(USER, _song(demo_csv))
        await _rate(telegram, answer, "👍1")
        assert (await telegram.ask(USER, "/backup")).text == fmt.NOT_ADMIN
        reply = await telegram.ask(ADMIN, "/backup")
        [path] = re.findall(r"<code>(.*)</code>", reply.text)
    assert RatingStore(f"sqlite:///{path}").ratings_of(USER) == _db(workdir).ratings_of(USER) != {}


async def test_kill_9_right_after_a_like_loses_nothing(telegram: FakeTelegram, workdir: Path, demo_csv: Path) -> None:
    db = workdir / "killed.db"
    bot = await BotProcess.start(workdir, token=TOKEN, base_url=telegram.base_url, MUSICREC_DB_URL=f"sqlite:///{db}")
    try:
        await telegram.wait_for(lambda c: c.method == "setMyCommands", timeout=120)
        answer = await telegram.ask(USER, _song(demo_csv), timeout=60)
        query_id = await telegram.tap(answer, _button(answer, "👍1"))
        await telegram.wait_for(
            lambda c: c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id, timeout=30
        )
        bot.process.send_signal(signal.SIGKILL)  # the confirmation was shown: nothing may be lost now
        await bot.wait_exit(timeout=30)
    finally:
        await bot.kill()
    assert RatingStore(f"sqlite:///{db}").ratings_of(USER) == {_listed(answer)[0]: 1}


async def test_what_was_shown_is_kept_only_as_long_as_forme_looks_back(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    old = RatingStore(f"sqlite:///{workdir / 'listeners.db'}", clock=lambda: now - datetime.timedelta(days=30))
    old.record_impressions(USER, ["old-track"])
    _db(workdir).record_impressions(USER, ["new-track"])
    async with run_bot() as app:
        [job] = app.job_queue.get_jobs_by_name(PRUNE_JOB)
        await job.run(app)
    assert _db(workdir).shown_since(USER, now - datetime.timedelta(days=365)) == {"new-track"}
