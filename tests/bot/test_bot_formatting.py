"""Answers stay valid Telegram HTML within 4096 characters; callback data stays under 64 bytes and round-trips."""

from __future__ import annotations

import pytest
from fake_bot_api import ApiError, check_html

import recsys
from bot import formatting as fmt


def _track(
    i: int, name: str = "Song", artist: str = "Artist", album: str = "Album", reason: str | None = None
) -> recsys.Track:
    return recsys.Track(f"{i:022d}", name, artist, album, 1999, 50.0, 0.5, reason)


def test_answer_lists_ten_numbered_linked_songs_with_reasons() -> None:
    seed = _track(0, "Seed")
    tracks = [_track(i, f"Song {i}", reason="same artist" if i % 2 else None) for i in range(1, 11)]
    text = fmt.answer_text(seed, tracks)
    check_html(text)
    assert text.count("https://open.spotify.com/track/") == 11
    for rank in range(1, 11):
        assert f"\n{rank}. <a href=" in text
    assert text.count("<i>same artist</i>") == 5
    assert "(Album, 1999)" in text


def test_hostile_and_huge_metadata_is_escaped_and_shortened_to_fit() -> None:
    evil = '<script>alert("x")</script> & <b>' * 40  # 1,400 characters that all need escaping
    seed = _track(0, evil, evil, evil)
    tracks = [_track(i, evil, evil, evil, reason=evil) for i in range(1, 11)]
    text = fmt.answer_text(seed, tracks)
    assert len(text) <= fmt.MAX_MESSAGE_LENGTH
    check_html(text)  # raises if anything was left unescaped
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert text.count("https://open.spotify.com/track/") == 11  # shortened, nothing dropped


def test_page_offset_numbers_continue() -> None:
    text = fmt.answer_text(_track(0), [_track(i) for i in range(11, 21)], offset=10)
    assert "\n11. " in text and "\n20. " in text and "\n1. " not in text


@pytest.mark.parametrize(
    "action",
    [fmt.Pick("4uLU6hMCjMI75M1A2tKUQC"), fmt.More("4uLU6hMCjMI75M1A2tKUQC", 40), fmt.NoneOfThese(), fmt.AdminRetrain()],
)
def test_callback_data_round_trips_within_64_bytes(action: fmt.Action) -> None:
    data = fmt.encode(action)
    assert len(data.encode()) <= fmt.MAX_CALLBACK_BYTES
    assert fmt.decode(data) == action


def test_too_long_ids_get_no_button_instead_of_a_rejected_message() -> None:
    with pytest.raises(ValueError, match="64"):
        fmt.encode(fmt.Pick("x" * 70))
    hit = recsys.SearchHit(_track(1), 95.0)
    long_hit = recsys.SearchHit(recsys.Track("y" * 70, "Long", "Id", "", None, None, 0.0), 95.0)
    keyboard = fmt.choices_keyboard([hit, long_hit])
    labels = [row[0].text for row in keyboard.inline_keyboard]
    assert labels == ["Song — Artist", "None of these"]


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "zz",
        "m:abc",
        "m:abc:x",
        "p:",
        "a:other",
        # Forged "more like this" pages: past the last page, or between pages (each would rank offset+11 songs).
        "m:abc:9999999",
        f"m:abc:{fmt.PAGE_SIZE * fmt.MAX_PAGES}",
        "m:abc:15",
        "m:abc:²",  # a Unicode digit: str.isdigit() says yes, int() says no
    ],
)
def test_unknown_callback_data_decodes_as_expired(data: str | None) -> None:
    assert fmt.decode(data) is None


def test_every_page_the_bot_offers_decodes() -> None:
    offsets = [fmt.PAGE_SIZE * page for page in range(1, fmt.MAX_PAGES)]
    assert offsets[-1] == fmt.MAX_OFFSET
    for offset in offsets:
        keyboard = fmt.answer_keyboard("abc", offset, has_more=True)
        assert keyboard is not None
        data = keyboard.inline_keyboard[0][0].callback_data
        assert isinstance(data, str) and fmt.decode(data) == fmt.More("abc", offset)


def test_more_button_stops_after_the_last_page() -> None:
    assert fmt.answer_keyboard("a", 10, has_more=True) is not None
    assert fmt.answer_keyboard("a", 10, has_more=False) is None
    assert fmt.answer_keyboard("a", fmt.PAGE_SIZE * fmt.MAX_PAGES, has_more=True) is None


def test_html_checker_refuses_what_telegram_refuses() -> None:
    for bad in ("a < b", "<b>open", "<div>x</div>", "x & y", "<b><i>x</b></i>"):
        with pytest.raises(ApiError):
            check_html(bad)
    check_html('<b>ok</b> &amp; <a href="https://x.y/?a=1&amp;b=2">link</a> &lt;3 &#x27;')
