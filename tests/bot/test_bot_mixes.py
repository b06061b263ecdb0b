"""Mixes, groups and inline mode end to end against the fake Bot API."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from botkit import OTHER_USER, USER, BotFactory
from fake_telegram import FakeTelegram

import recsys
from bot import mixes, personal
from bot.db import RatingStore

pytestmark = pytest.mark.usefixtures("no_violations")

SPOTIFY = re.compile(r'<a href="https://open\.spotify\.com/track/([A-Za-z0-9]+)">')
GROUP = -1001234


def _unique(csv_path: Path, n: int) -> pd.Series:
    tracks = pd.read_csv(csv_path, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    counts = tracks["track_name"].value_counts()
    return tracks[tracks["track_name"].map(counts) == 1].iloc[n]


async def test_mix_of_three_songs_sends_twenty_and_the_files(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    seeds = [_unique(demo_csv, n) for n in range(3)]
    async with run_bot():
        assert (await telegram.ask(USER, "/mix")).text == mixes.MIX_USAGE
        assert (await telegram.ask(USER, f"/mix {seeds[0]['track_name']}")).text == mixes.MIX_USAGE  # one is not a mix
        since = telegram.mark()
        reply = await telegram.ask(USER, "/mix " + "; ".join(s["track_name"] for s in seeds))
        await telegram.wait_for(lambda c: c.method == "sendDocument" and c.ok and "csv" in str(c.params), since=since)
    assert reply.text.startswith("🎚")
    listed = SPOTIFY.findall(reply.text)
    assert len(listed) == 20 and len(set(listed)) == 20 and not {s["track_id"] for s in seeds} & set(listed)
    files = {name.rsplit(".", 1)[1]: content.decode() for _, name, content in telegram.documents}
    playlist = [line for line in files["m3u"].splitlines() if line.startswith("https://")]
    assert files["m3u"].startswith("#EXTM3U") and playlist == [f"https://open.spotify.com/track/{t}" for t in listed]
    table = list(csv.DictReader(io.StringIO(files["csv"])))
    assert [row["track_id"] for row in table] == listed and table[0]["spotify_url"] == playlist[0]


async def test_mix_names_the_songs_it_could_not_tell_apart(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    known = _unique(demo_csv, 0)["track_name"]
    async with run_bot():
        reply = await telegram.ask(USER, f"/mix {known}; home; qqqqzzzz xxkk")
    assert "could not tell" in reply.text and "home" in reply.text and "qqqqzzzz xxkk" in reply.text
    assert known not in reply.text.split("\n", 1)[1].split("•")[0]  # the clear one is not listed as a problem
    assert not telegram.documents


async def test_in_a_group_commands_answer_the_asker_and_personal_data_stays_private(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    song = _unique(demo_csv, 0)
    async with run_bot():
        since = telegram.mark()
        asked = await telegram.send_group_text(
            GROUP, USER, f"/recommend@{telegram.bot_user['username']} {song['track_name']}"
        )
        call = await telegram.wait_reply(GROUP, since=since)
        answer = telegram.message_of(call)
        assert answer.text.startswith("🎧") and answer.reply_to is not None  # a reply to the asker's message
        assert asked and SPOTIFY.findall(answer.text)[0] == song["track_id"]
        for command in ("/likes", "/history", "/export", "/forget"):
            since = telegram.mark()
            await telegram.send_group_text(GROUP, USER, command)
            assert telegram.message_of(await telegram.wait_reply(GROUP, since=since)).text == personal.PRIVATE_ONLY


async def test_groupmix_mixes_the_likes_of_the_members_who_rated(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, workdir: Path
) -> None:
    async with run_bot():
        since = telegram.mark()
        await telegram.send_group_text(GROUP, USER, "/groupmix")
        assert telegram.message_of(await telegram.wait_reply(GROUP, since=since)).text == mixes.NOBODY_RATED
        # Two members rate songs (in their private chats); a third only talks in the group.
        store = RatingStore(f"sqlite:///{workdir / 'listeners.db'}")
        liked = {
            USER: [_unique(demo_csv, n)["track_id"] for n in range(3)],
            OTHER_USER: [_unique(demo_csv, 9)["track_id"]],
        }
        for user, tracks in liked.items():
            for track in tracks:
                store.rate(user, track, 1, "test")
            since = telegram.mark()
            await telegram.send_group_text(GROUP, user, "/help")  # they are seen in the group
            await telegram.wait_reply(GROUP, since=since)
        store.rate(99, "not-a-member", 1, "test")
        since = telegram.mark()
        await telegram.send_group_text(GROUP, USER, "/groupmix")
        reply = telegram.message_of(await telegram.wait_reply(GROUP, since=since))
    assert "A mix for this group" in reply.text and "2 members" in reply.text
    listed = SPOTIFY.findall(reply.text)
    assert len(listed) == 20 and not set(listed) & {t for ts in liked.values() for t in ts}
    assert await _eventually_two_documents(telegram)


async def _eventually_two_documents(telegram: FakeTelegram) -> bool:
    await telegram.wait_for(lambda c: c.method == "sendDocument" and c.ok and ".csv" in str(c.params))
    return len(telegram.documents) == 2


async def test_inline_query_offers_songs_and_choosing_one_posts_its_card(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    song = _unique(demo_csv, 4)
    searches: list[str] = []
    real_search = recsys.Snapshot.search

    def counting(self: recsys.Snapshot, text: str, limit: int = 5) -> list[recsys.SearchHit]:
        searches.append(text)
        return real_search(self, text, limit)

    monkeypatch.setattr(recsys.Snapshot, "search", counting)
    async with run_bot():
        query_id = await telegram.send_inline_query(USER, song["track_name"].lower())
        await telegram.wait_for(lambda c: c.method == "answerInlineQuery" and c.ok)
        answer = telegram.inline_answers[query_id]
        assert answer is not None
        results = answer["results"]
        assert 1 <= len(results) <= mixes.INLINE_RESULTS and results[0]["id"] == song["track_id"]
        assert results[0]["title"] == f"{song['track_name']} — {song['track_artist']}"
        card = await telegram.choose_inline(USER, GROUP, query_id, song["track_id"])
        # A second identical query is served from the cache (no second search) with the same answer.
        again = await telegram.send_inline_query(OTHER_USER, song["track_name"].lower())
        await telegram.wait_for(lambda c: c.method == "answerInlineQuery" and c.params.get("inline_query_id") == again)
        assert telegram.inline_answers[again] == {**answer, "inline_query_id": again}
        assert searches == [song["track_name"].lower()]
    links = SPOTIFY.findall(card.text)
    assert links[0] == song["track_id"] and len(links) == 1 + mixes.CARD_SIZE
    assert "Five songs like it" in card.text


async def test_inline_query_of_nothing_answers_with_no_results(telegram: FakeTelegram, run_bot: BotFactory) -> None:
    async with run_bot():
        query_id = await telegram.send_inline_query(USER, " ")
        await telegram.wait_for(lambda c: c.method == "answerInlineQuery" and c.ok)
        assert telegram.inline_answers[query_id] is not None and telegram.inline_answers[query_id]["results"] == []


async def test_why_these_sends_the_picture_of_the_page(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    song = _unique(demo_csv, 2)
    async with run_bot():
        answer = await telegram.ask(USER, song["track_name"])
        *_, (why_label, why), (more_label, _) = answer.buttons()
        assert why_label == "📊 Why these?" and more_label.startswith("More like this")
        since = telegram.mark()
        await telegram.tap(answer, why)
        await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.ok, since=since, timeout=30)
    [(chat_id, filename, png)] = telegram.photos
    assert chat_id == USER and filename.endswith(".png") and png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1000, 700)
    caption = next(c for c in telegram.calls if c.method == "sendPhoto").params["caption"]
    assert song["track_name"] in caption


async def test_a_direct_answer_offers_the_other_versions_one_tap_away(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    tracks = pd.read_csv(demo_csv, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    versions = tracks[tracks.duplicated(["track_name", "track_artist"], keep=False)]  # the demo's reissued song
    name, artist = versions.iloc[0]["track_name"], versions.iloc[0]["track_artist"]
    async with run_bot():
        answer = await telegram.ask(USER, f"{name} - {artist}")
        assert answer.text.startswith("🎧")
        answered = SPOTIFY.findall(answer.text)[0]
        [(label, data)] = [(b, d) for b, d in answer.buttons() if b.startswith("↪")]
        same = versions[(versions["track_name"] == name) & (versions["track_artist"] == artist)]
        other = next(t for t in same["track_id"] if t != answered)
        assert label.startswith(f"↪ {name} — {artist}") and data == f"p:{other}"
        _, edit = await telegram.press(answer, data)
    assert SPOTIFY.findall(telegram.message_of(edit).text)[0] == other


async def test_mood_answers_from_words_and_says_which_it_does_not_know(
    telegram: FakeTelegram, run_bot: BotFactory, demo_csv: Path
) -> None:
    tracks = pd.read_csv(demo_csv, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    trap = set(tracks.loc[tracks["playlist_subgenre"] == "trap", "track_id"])
    async with run_bot():
        assert (await telegram.ask(USER, "/mood")).text == mixes.MOOD_USAGE
        reply = await telegram.ask(USER, "/mood trap")
        unknown = await telegram.ask(USER, "/mood qqqxzz vvbnw")
    assert reply.text.startswith("🌦")
    listed = SPOTIFY.findall(reply.text)
    assert len(listed) == 10 and len(set(listed) & trap) >= 8  # the planted subgenre's songs
    assert [b for b, _ in reply.buttons()][:2] == ["👍1", "👎1"]
    assert "qqqxzz" in unknown.text and not SPOTIFY.findall(unknown.text)  # never random songs
