"""Mixes and cards: a numbered playlist message with its .m3u and .csv files, and the card an inline result posts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from telegram import InlineQueryResultArticle, InputTextMessageContent, LinkPreviewOptions

import recsys
from bot.formatting import MAX_MESSAGE_LENGTH, clip, esc, track_line

MIX_SIZE = 20  # songs in a mix: an hour of music
MIN_SEEDS, MAX_SEEDS = 2, 5  # one seed is /recommend; more than five blur into a genre
CARD_SIZE = 5  # recommendations on an inline card: short enough to post into someone else's chat
INLINE_RESULTS = 8  # songs offered per inline query; Telegram shows about this many without scrolling
INLINE_CACHE_S = 300  # how long Telegram may cache an inline answer (the bot caches per model version too)

MIX_USAGE = (
    "🎚 Name 2 to 5 songs separated by <code>;</code> and I will make a 20-song mix from them, e.g.\n"
    "<code>/mix Yellow - Coldplay; Clocks; Viva la Vida</code>"
)
GROUP_ONLY = "🎚 /groupmix mixes the likes of a group's members: use it in a group I am in."
NOBODY_RATED = (
    "🎚 Nobody here has liked songs yet. Tap 👍 under songs in any answer (here or in a private chat with me), "
    "then ask for /groupmix again."
)
MOOD_USAGE = (
    "🌦 Tell me a mood, an activity, a genre or a decade and I will find songs for it, e.g.\n"
    "<code>/mood rainy day</code>, <code>/mood gym</code>, <code>/mood 90s rock</code>, <code>/mood chill study</code>"
)
_SEPARATORS = re.compile(r"[;\n]+")


def split_seeds(text: str) -> list[str]:
    """The songs of "/mix a; b; c" (also one per line), blanks dropped."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def mix_text(heading: str, tracks: Sequence[recsys.Track]) -> str:
    """The mix as a numbered list under an (already escaped) heading; names shortened until it fits a message."""
    text = heading
    for name_limit in (48, 32, 20, 12):
        lines = [heading, ""] + [track_line(rank, t, name_limit, False) for rank, t in enumerate(tracks, start=1)]
        lines += ["", "The same as a playlist file (.m3u) and a table (.csv) below."]
        text = "\n".join(lines)
        if len(text) <= MAX_MESSAGE_LENGTH:
            return text
    return clip(text, MAX_MESSAGE_LENGTH)  # pragma: no cover - 20 lines of 12-character names always fit


def mood_text(words: str, tracks: Sequence[recsys.Track]) -> str:
    """Songs for a mood, each with the words that led there."""
    lines = [f"🌦 <b>Songs for</b> {esc(clip(words, 80))}", ""]
    lines += [track_line(rank, t, 48) for rank, t in enumerate(tracks, start=1)]
    return clip("\n".join(lines), MAX_MESSAGE_LENGTH)


def mix_heading(seeds: Sequence[recsys.Track]) -> str:
    """Which songs the mix continues."""
    names = ", ".join(f"{esc(clip(s.name, 40))} — {esc(clip(s.artist, 30))}" for s in seeds)
    return f"🎚 <b>A mix from</b> {names}"


def unresolved_text(problems: Sequence[tuple[str, recsys.Resolution]]) -> str:
    """Which of the named songs were unclear or unknown, with what they might be."""
    lines = ["🎚 I could not tell which songs you meant:"]
    for query, resolution in problems:
        close = "; ".join(f"{clip(h.track.name, 40)} — {clip(h.track.artist, 30)}" for h in resolution.hits[:3])
        why = "which one?" if resolution.kind == "ambiguous" else "not found"
        lines.append(f"• <b>{esc(clip(query, 60))}</b>: {why}" + (f" ({esc(close)})" if close else ""))
    lines.append("\nAdd the artist to each, e.g. <code>/mix Yellow - Coldplay; Clocks - Coldplay</code>")
    return "\n".join(lines)


def m3u(tracks: Sequence[recsys.Track]) -> bytes:
    """An extended M3U playlist of the songs' Spotify URLs (players that read M3U list them by name)."""
    lines = ["#EXTM3U"]
    for t in tracks:
        lines += [f"#EXTINF:-1,{_one_line(t.artist)} - {_one_line(t.name)}", t.url]
    return ("\n".join(lines) + "\n").encode("utf-8")


def csv_bytes(tracks: Sequence[recsys.Track]) -> bytes:
    """The songs as a CSV table."""
    out = io.StringIO()
    table = csv.writer(out)
    table.writerow(("rank", "title", "artist", "album", "year", "track_id", "spotify_url"))
    for rank, t in enumerate(tracks, start=1):
        table.writerow((rank, t.name, t.artist, t.album, t.year or "", t.track_id, t.url))
    return out.getvalue().encode("utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def card_text(seed: recsys.Track, tracks: Sequence[recsys.Track]) -> str:
    """What an inline result posts into a chat: the song and five like it, with links."""
    lines = [f"🎧 {track_line(0, seed, 60, False).removeprefix('0. ')}", "", "<b>Five songs like it</b>"]
    lines += [track_line(rank, t, 48, False) for rank, t in enumerate(tracks[:CARD_SIZE], start=1)]
    return clip("\n".join(lines), MAX_MESSAGE_LENGTH)


def inline_article(seed: recsys.Track, tracks: Sequence[recsys.Track]) -> InlineQueryResultArticle:
    """One inline result: "Title — Artist", its album and year, posting the card when chosen."""
    details = ", ".join(str(x) for x in (seed.album, seed.year) if x)
    return InlineQueryResultArticle(
        id=seed.track_id[:64],
        title=clip(f"{seed.name} — {seed.artist}", 100),
        description=clip(details, 100) or None,
        input_message_content=InputTextMessageContent(
            card_text(seed, tracks), parse_mode="HTML", link_preview_options=LinkPreviewOptions(is_disabled=True)
        ),
    )
