"""End to end: the real Application polls the fake Telegram over HTTP; users write, tap, and read answers."""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from botkit import ADMIN, OTHER_USER, TOKEN, USER, BotFactory
from fake_telegram import MAX_CALLBACK_DATA_BYTES, FakeTelegram

import recsys
import recsys.data
import recsys.demo
from bot import formatting as fmt
from bot.limits import UserRateLimiter
from bot.service import MusicService, Resolution

pytestmark = pytest.mark.usefixtures("no_violations")

SPOTIFY = re.compile(r'<a href="https://open\.spotify\.com/track/([A-Za-z0-9]+)">')


def _catalogue(csv: Path) -> pd.DataFrame:
    return pd.read_csv(csv, dtype=str, keep_default_na=False).drop_duplicates("track_id")


def _unique_title(csv: Path) -> pd.Series:
    """A track whose title no other track has: naming it is a clear match."""
    tracks = _catalogue(csv)
    counts = tracks["track_name"].value_counts()
    return tracks[tracks["track_name"].map(counts) == 1].iloc[0]


def _shared_title(csv: Path) -> tuple[str, list[str]]:
    """The demo's planted "Home", sung by three comparably likely artists: naming it asks which one."""
    tracks = _catalogue(csv)
    return "Home", sorted(tracks.loc[tracks["track_name"] == "Home", "track_artist"])


def _ranked_links(text: str) -> list[str]:
    """Track ids of the numbered answer lines, in rank order (the first link is the seed song)."""
    return SPOTIFY.findall(text)[1:]


async def test_start_publishes_command_menu_and_greets(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot() as app:
        assert {c["command"] for c in telegram.commands} >= {"recommend", "help", "start", "status", "retrain"}
        greeting = await telegram.ask(USER, "/start")
        assert "/recommend" in greeting.text
        info = app.bot_data["state"].service.info  # says what is loaded, not "thousands of playlists" on the demo
        assert f"{info.num_playlists:,} playlists and {info.num_tracks:,} songs" in greeting.text
        help_text = await telegram.ask(USER, "/help")
        assert "/retrain" not in help_text.text  # admin commands are not advertised to everyone
        admin_help = await telegram.ask(ADMIN, "/help")
        assert "/retrain" in admin_help.text


async def test_no_argument_answers_with_usage_and_examples(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot():
        reply = await telegram.ask(USER, "/recommend")
        assert "Examples" in reply.text and "/recommend " in reply.text
        assert not reply.buttons()


@pytest.mark.parametrize("form", ["title", "title - artist"])
async def test_clear_match_answers_directly_with_ten_linked_songs(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, form: str
) -> None:
    if form == "title":
        row = _unique_title(demo_csv)
        query, seed_id, seed_name = row["track_name"], row["track_id"], row["track_name"]
    else:
        title, artists = _shared_title(demo_csv)
        tracks = _catalogue(demo_csv)
        row = tracks[(tracks["track_name"] == title) & (tracks["track_artist"] == artists[1])].iloc[0]
        query, seed_id, seed_name = f"{title} - {artists[1]}", row["track_id"], title
    async with run_bot():
        reply = await telegram.ask(USER, f"/recommend {query}")
        assert reply.text.startswith("🎧"), reply.text
        assert SPOTIFY.findall(reply.text)[0] == seed_id  # the song the user meant, not a namesake
        assert seed_name in reply.text
        ranked = _ranked_links(reply.text)
        assert len(ranked) == 10 and len(set(ranked)) == 10 and seed_id not in ranked
        assert [int(n) for n in re.findall(r"^(\d+)\. ", reply.text, re.M)] == list(range(1, 11))
        *ratings, (why, _), (label, data) = reply.buttons()
        assert why == "📊 Why these?"
        assert "More like this" in label and len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
        # 👍n and 👎n for each of the ten songs, numbered like the list.
        assert [b for b, _ in ratings] == [f"{m}{n}" for n in range(1, 11) for m in ("👍", "👎")]
        assert all(len(d.encode()) <= MAX_CALLBACK_DATA_BYTES for _, d in ratings)

        # "More like this" brings ranks 11-20 in a new message and retires the old "more" button (the ratings stay).
        _, more = await telegram.press(reply, data)
        page2 = telegram.message_of(more)
        assert page2.message_id != reply.message_id
        assert [int(n) for n in re.findall(r"^(\d+)\. ", page2.text, re.M)] == list(range(11, 21))
        assert not set(_ranked_links(page2.text)) & set(ranked)
        assert [b for b, _ in telegram.messages[(USER, reply.message_id)].buttons()] == [
            *(b for b, _ in ratings),
            "📊 Why these?",
        ]
        assert [b for b, _ in page2.buttons()][:2] == ["👍11", "👎11"]


async def test_plain_text_message_works_like_recommend(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    row = _unique_title(demo_csv)
    async with run_bot():
        reply = await telegram.ask(USER, row["track_name"])
        assert SPOTIFY.findall(reply.text)[0] == row["track_id"]


async def test_ambiguous_title_offers_buttons_and_a_tap_edits_in_the_answer(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    title, artists = _shared_title(demo_csv)
    async with run_bot():
        question = await telegram.ask(USER, f"/recommend {title}")
        buttons = question.buttons()
        labels = [label for label, _ in buttons]
        assert labels[-1] == "None of these"
        assert 2 <= len(buttons) - 1 <= 5
        assert sorted(label.split(" — ")[1] for label in labels[:-1] if label.startswith(title))[: len(artists)] == (
            artists
        )
        assert all(len(d.encode()) <= MAX_CALLBACK_DATA_BYTES for _, d in buttons)

        chosen_label, chosen_data = buttons[1]
        query_id, edit = await telegram.press(question, chosen_data)
        assert edit.method == "editMessageText" and edit.params["message_id"] == question.message_id
        answer = telegram.messages[(USER, question.message_id)]
        assert SPOTIFY.findall(answer.text)[0] == chosen_data.split(":", 1)[1]
        assert chosen_label.split(" — ")[1] in answer.text.split("\n")[0]
        assert len(_ranked_links(answer.text)) == 10
        await asyncio.sleep(0.1)
        assert telegram.callback_answered(query_id)


async def test_none_of_these_edits_in_a_hint(telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path) -> None:
    title, _ = _shared_title(demo_csv)
    async with run_bot():
        question = await telegram.ask(USER, title)
        _, edit = await telegram.press(question, "n")
        assert "artist" in edit.text and edit.params["message_id"] == question.message_id


async def test_no_match_says_so_and_offers_closest_names(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot():
        reply = await telegram.ask(USER, "/recommend qqxzv wqkjz")
        assert "could not find" in reply.text
        assert "qqxzv wqkjz" in reply.text
        assert not SPOTIFY.findall(reply.text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/recommend " + "la " * 1700, fmt.TOO_LONG),  # ~5,000 characters
        ("🎵🎶🔥", fmt.NO_LETTERS),
        ("/recommend <<<>>> &&& ***", fmt.NO_LETTERS),
    ],
)
async def test_odd_input_gets_a_polite_answer(
    telegram: FakeTelegram, run_bot: BotFactory, text: str, expected: str
) -> None:
    async with run_bot():
        reply = await telegram.ask(USER, text)
        assert reply.text == expected


async def test_markup_in_the_query_is_escaped(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot():
        reply = await telegram.ask(USER, '/recommend <b>Zzqx</b> & "<i>Yyvw</i>"')
        # The fake refuses unbalanced or unknown tags, so an unescaped echo would have failed to send.
        assert "&lt;b&gt;Zzqx&lt;/b&gt; &amp; &quot;&lt;i&gt;Yyvw" in reply.text


async def test_expired_button_says_so_and_a_double_tap_is_harmless(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    title, _ = _shared_title(demo_csv)
    async with run_bot():
        # Buttons from an older version, or for a song the retrained catalogue no longer has.
        for data in ("p:0000000000000000000000", "m:0000000000000000000000:10", "x:from-an-old-version"):
            question = await telegram.ask(USER, title)
            query_id, edit = await telegram.press(question, data, force=True)
            assert edit.method in ("editMessageText", "sendMessage") and "expired" in edit.text
            await asyncio.sleep(0.05)
            assert telegram.callback_answered(query_id)

        # A double tap: the second callback arrives before the first edit; its identical edit is refused by
        # Telegram ("message is not modified") and the bot must shrug that off, not apologise.
        telegram.tolerated = ("message is not modified",)
        question = await telegram.ask(USER, title)
        since = telegram.mark()
        first = await telegram.tap(question, "p:1111111111111111111111", force=True)
        second = await telegram.tap(question, "p:1111111111111111111111", force=True)
        await telegram.wait_for(lambda c: c.method == "editMessageText" and not c.ok, since=since)
        await asyncio.sleep(0.2)
        assert telegram.callback_answered(first) and telegram.callback_answered(second)
        assert fmt.APOLOGY not in telegram.texts_to(USER)
        assert "expired" in telegram.messages[(USER, question.message_id)].text


async def test_non_admin_is_refused_and_logged(
    telegram: FakeTelegram, run_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_bot() as app:
        service: MusicService = app.bot_data["state"].service
        assert (await telegram.ask(USER, "/retrain")).text == fmt.NOT_ADMIN
        assert (await telegram.ask(USER, "/status")).text == fmt.NOT_ADMIN
        # The admin's "retrain now" button, forwarded to or tapped by someone else, checks the user too.
        status = await telegram.ask(ADMIN, "/status")
        since = telegram.mark()
        await telegram.tap(status, "a:retrain", user_id=USER)
        answer = await telegram.wait_for(lambda c: c.method == "answerCallbackQuery", since=since)
        assert answer.params["text"] == fmt.NOT_ADMIN and answer.params.get("show_alert") is True
        assert not service.retraining
    assert sum("refused admin action" in r.getMessage() for r in caplog.records) == 3


async def test_admin_retrain_swaps_model_while_others_are_served(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    row = _unique_title(demo_csv)
    async with run_bot() as app:
        service: MusicService = app.bot_data["state"].service
        old_version = service.info.version
        since = telegram.mark()
        assert (await telegram.ask(ADMIN, "/retrain")).text == fmt.RETRAIN_STARTED
        assert service.retraining
        assert (await telegram.ask(ADMIN, "/retrain")).text == fmt.RETRAIN_BUSY

        # Another user is answered while the child process trains.
        reply = await telegram.ask(USER, row["track_name"])
        assert SPOTIFY.findall(reply.text)[0] == row["track_id"]
        assert service.retraining, "the retrain ended before the user's answer: the test proves nothing"

        done = await telegram.wait_for(
            lambda c: c.chat_id == ADMIN and c.text.startswith("✅"), since=since, timeout=120
        )
        new_version = service.info.version
        assert new_version != old_version and new_version in done.text
        status = await telegram.ask(ADMIN, "/status")
        assert new_version in status.text and old_version not in status.text.split("\n")[0]
        # The new model answers too.
        assert SPOTIFY.findall((await telegram.ask(USER, row["track_name"])).text)[0] == row["track_id"]


async def test_stopping_the_bot_during_a_retrain_ends_it_and_its_process_within_seconds(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path
) -> None:
    # A training that would run for an hour: before the fix, stopping waited for it (up to the 30-minute timeout).
    slow = recsys.TrainConfig(epochs=100_000, patience=100_000, max_seconds=3600, progress=False)
    service = MusicService(workdir / "songs.csv", workdir / "model", train_config=slow)
    async with run_bot(service=service) as app:
        assert app.bot_data["state"].service is service
        serving = service.info.version
        assert (await telegram.ask(ADMIN, "/retrain")).text == fmt.RETRAIN_STARTED
        for _ in range(600):
            children = [p for p in multiprocessing.active_children() if p.name == "musicrec-retrain"]
            if children:
                break
            await asyncio.sleep(0.1)
        [child] = children
        await asyncio.sleep(2)  # into the training proper
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert not child.is_alive() and not service.retraining
    assert recsys.load(workdir / "model").info.version == serving  # nothing half-saved took its place


async def test_admin_retrain_button_under_status_starts_a_retrain(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot() as app:
        service: MusicService = app.bot_data["state"].service
        status = await telegram.ask(ADMIN, "/status")
        since = telegram.mark()
        await telegram.tap(status, "a:retrain", user_id=ADMIN)
        await telegram.wait_for(lambda c: c.text == fmt.RETRAIN_STARTED, since=since)
        await telegram.wait_for(lambda c: c.chat_id == ADMIN and c.text.startswith("✅"), since=since, timeout=120)
        assert service.last_outcome is not None and service.last_outcome.status == "swapped"


async def test_bad_csv_keeps_the_old_model_and_tells_the_admins(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path, demo_csv: Path
) -> None:
    second_admin = 1002
    (workdir / "songs.csv").write_text("this,is,not\nthe,expected,layout\n")
    row = _unique_title(demo_csv)
    async with run_bot(admin_ids=frozenset({ADMIN, second_admin})) as app:
        service: MusicService = app.bot_data["state"].service
        old_version = service.info.version
        since = telegram.mark()
        await telegram.ask(ADMIN, "/retrain")
        failed = await telegram.wait_for(
            lambda c: c.chat_id == ADMIN and c.text.startswith("❌"), since=since, timeout=120
        )
        assert "track_id" in failed.text  # the reason: the missing columns
        assert old_version in failed.text
        await telegram.wait_for(lambda c: c.chat_id == second_admin and c.text.startswith("❌"), since=since)
        assert service.info.version == old_version
        assert SPOTIFY.findall((await telegram.ask(USER, row["track_name"])).text)[0] == row["track_id"]
        status = await telegram.ask(ADMIN, "/status")
        assert old_version in status.text and "failed" in status.text


async def test_scheduled_run_retrains_only_after_the_csv_changed(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path
) -> None:
    async with run_bot(retrain_interval_minutes=1 / 60) as app:
        service: MusicService = app.bot_data["state"].service
        assert app.job_queue is not None
        [job] = app.job_queue.get_jobs_by_name("scheduled-retrain")
        assert job.job.max_instances == 1 and job.job.coalesce is True and job.job.misfire_grace_time >= 60
        old_version = service.info.version

        await asyncio.sleep(2.5)  # two scheduled runs on unchanged data
        assert service.last_outcome is not None and service.last_outcome.status == "unchanged"
        assert service.info.version == old_version
        assert not telegram.texts_to(ADMIN)

        since = telegram.mark()
        recsys.demo.write_demo_csv(workdir / "songs.csv", seed=1)
        done = await telegram.wait_for(
            lambda c: c.chat_id == ADMIN and c.text.startswith("✅"), since=since, timeout=120
        )
        assert service.info.version != old_version and service.info.version in done.text
        assert service.info.data_fingerprint == recsys.data.file_fingerprint(workdir / "songs.csv")


async def test_restart_serves_the_saved_snapshot_and_old_buttons_still_work(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path, demo_csv: Path
) -> None:
    row = _unique_title(demo_csv)
    async with run_bot() as app:
        version = app.bot_data["state"].service.info.version
        answer = await telegram.ask(USER, row["track_name"])
    # The CSV changes while the bot is down: start-up must still serve the saved model, not retrain.
    recsys.demo.write_demo_csv(workdir / "songs.csv", seed=2)
    async with run_bot() as app:
        service: MusicService = app.bot_data["state"].service
        assert service.info.version == version and service.last_outcome is None
        status = await telegram.ask(ADMIN, "/status")
        assert version in status.text
        *_, (_, data) = answer.buttons()
        _, more = await telegram.press(answer, data)
        assert [int(n) for n in re.findall(r"^(\d+)\. ", more.text, re.M)] == list(range(11, 21))


async def test_per_user_rate_limit_answers_politely_once(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    row = _unique_title(demo_csv)
    async with run_bot(user_burst=2, user_requests_per_minute=1):
        since = telegram.mark()
        for _ in range(5):
            await telegram.send_text(USER, row["track_name"])
        other = await telegram.ask(OTHER_USER, row["track_name"])  # another user is not affected
        assert other.text.startswith("🎧")
        await asyncio.sleep(0.5)
        texts = telegram.texts_to(USER, since=since)
        assert sum(t.startswith("🎧") for t in texts) == 2
        assert texts.count(fmt.RATE_LIMITED) == 1


async def test_forged_page_button_is_expired_and_never_ranks_past_the_last_page(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = _unique_title(demo_csv)
    async with run_bot() as app:
        service: MusicService = app.bot_data["state"].service
        ranked: list[int] = []  # how many songs each recommend() call made the snapshot rank
        original = service.recommend

        async def recording(track_id: str, *, k: int = 10, offset: int = 0) -> list[recsys.Track]:
            ranked.append(offset + k)
            return await original(track_id, k=k, offset=offset)

        monkeypatch.setattr(service, "recommend", recording)
        answer = await telegram.ask(USER, row["track_name"])
        assert ranked == [fmt.PAGE_SIZE + 1], "the recorder is not in the path: the test proves nothing"
        ranked.clear()
        for offset in (9_999_999, fmt.PAGE_SIZE * fmt.MAX_PAGES, 15):
            answer = await telegram.ask(USER, row["track_name"])
            _, reply = await telegram.press(answer, f"m:{row['track_id']}:{offset}", force=True)
            assert "expired" in reply.text
        # The real last page is still served.
        answer = await telegram.ask(USER, row["track_name"])
        _, last = await telegram.press(answer, f"m:{row['track_id']}:{fmt.MAX_OFFSET}", force=True)
        assert re.search(rf"^{fmt.MAX_OFFSET + 1}\. ", last.text, re.M)
        assert max(ranked) == fmt.MAX_PAGES * fmt.PAGE_SIZE + 1


def test_rate_limiter_forgets_idle_users_but_not_one_mid_streak() -> None:
    limiter = UserRateLimiter(burst=5, per_minute=20)  # a token every 3 s; refills from empty in 15 s
    for user_id in range(10_000):
        assert limiter.allow(user_id, now=user_id / 1000)  # 10,000 users once each within 10 s
    greedy = 99_999
    assert all(limiter.allow(greedy, now=14.0) for _ in range(5))
    assert not limiter.allow(greedy, now=14.0) and limiter.first_refusal(greedy)
    assert len(limiter) > 10_000

    assert limiter.allow(123_456, now=15.5)  # everyone else has refilled to a full bucket by now
    assert len(limiter) <= 3
    # The greedy user earned only half a token since: still refused, and not warned a second time.
    assert not limiter.allow(greedy, now=15.5)
    assert not limiter.first_refusal(greedy)
    assert limiter.allow(greedy, now=17.5)  # a whole token 3.5 s after emptying the bucket


async def test_flood_control_retries_after_429(telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path) -> None:
    row = _unique_title(demo_csv)
    async with run_bot():
        telegram.script_error("sendMessage", 429, retry_after=1, times=2)
        since = telegram.mark()
        reply = await telegram.ask(USER, row["track_name"], timeout=20)
        assert reply.text.startswith("🎧")
        sends = [c for c in telegram.calls[since:] if c.method == "sendMessage"]
        assert [c.error.code if c.error else 200 for c in sends] == [429, 429, 200]
        assert sends[2].at - sends[0].at >= 2.0  # it waited retry_after each time


class _BrokenService(MusicService):
    async def resolve(self, text: str) -> Resolution:
        raise RuntimeError("search index exploded")


async def test_unexpected_error_apologises_and_tells_admins(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = _BrokenService(workdir / "songs.csv", workdir / "model")
    async with run_bot(service=service):
        reply = await telegram.ask(USER, "/recommend anything")
        assert reply.text == fmt.APOLOGY
        alert = await telegram.wait_for(lambda c: c.chat_id == ADMIN, timeout=5)
        assert "search index exploded" in alert.text
    assert any(r.exc_info and "search index exploded" in str(r.exc_info[1]) for r in caplog.records)


async def test_the_token_never_appears_in_logs(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    row = _unique_title(demo_csv)
    async with run_bot():
        await telegram.ask(USER, row["track_name"])
        await telegram.ask(USER, "/status")
        telegram.script_error("sendMessage", 400, retry_after=None)
        await telegram.send_text(USER, row["track_name"])
        await telegram.wait_for(lambda c: c.error is not None and c.error.code == 400)
        await asyncio.sleep(0.3)
    logged = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert caplog.records, "nothing was logged, so the check proves nothing"
    assert TOKEN not in logged
    assert TOKEN.split(":")[1] not in logged


async def test_concurrent_users_all_get_their_own_answers(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    tracks = _catalogue(demo_csv)
    counts = tracks["track_name"].value_counts()
    unique = tracks[tracks["track_name"].map(counts) == 1].head(20)
    async with run_bot():
        since = telegram.mark()
        for user_id, name in enumerate(unique["track_name"], start=5000):
            await telegram.send_text(user_id, name)
        seeds: dict[int, str] = {}
        for user_id in range(5000, 5000 + len(unique)):
            call = await telegram.wait_reply(user_id, since=since)
            seeds[user_id] = SPOTIFY.findall(call.text)[0]
        assert list(seeds.values()) == list(unique["track_id"])
        assert collections.Counter(c.chat_id for c in telegram.calls[since:] if c.method == "sendMessage") == {
            u: 1 for u in seeds
        }
