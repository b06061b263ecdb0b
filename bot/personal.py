"""Texts and keyboards of a person's own data: 👍/👎 under answers, /likes, /forme, /history, /forget, /export."""

from __future__ import annotations

import datetime as dtm
from collections.abc import Mapping, Sequence

from telegram import InlineKeyboardMarkup

import recsys
from bot.actions import FOR_ME, Forget, ForMe, LikesPage, Pick, Unlike
from bot.formatting import DISLIKE, LIKE, button, clip, esc, rating_rows, track_line

LIKES_PAGE = 10

NO_LIKES_YET = (
    "🎯 I do not know your taste yet. Tap 👍 under songs you like in any answer "
    "(try <code>/recommend Blinding Lights</code>) and /forme will find more of them."
)
LIKES_EMPTY = "You have not liked any songs yet. Tap 👍 under a song in any answer."
NOT_SAVED = "😕 I could not save that right now; please try again later. Recommendations still work."
FORGET_QUESTION = (
    "🗑 Delete everything I store about you: your likes and dislikes, your requests and what I showed you? "
    "This cannot be undone."
)
FORGET_CANCELLED = "OK, nothing was deleted."
EXPORT_CAPTION = "📄 Everything I store about you, as CSV."
NOTHING_STORED = "I store nothing about you."
PRIVATE_ONLY = "🔒 That shows or changes your own data: please use it in a private chat with me."
HISTORY_EMPTY = "You have not asked me for songs yet. Try <code>/recommend Blinding Lights</code>."


def rated_answer(value: int | None) -> str:
    """The pop-up after a 👍/👎 tap."""
    if value is None:
        return "Rating removed"
    return f"{LIKE} Liked: I will remember" if value > 0 else f"{DISLIKE} Noted: fewer like this"


def forme_text(tracks: Sequence[recsys.Track]) -> str:
    """Ten songs for the person, each with the like that led there."""
    lines = ["🎯 <b>Songs for you</b>, from what you liked", ""]
    lines += [track_line(rank, t, 48) for rank, t in enumerate(tracks, start=1)]
    if not tracks:
        lines.append("I have nothing new for you right now; like a few more songs.")
    return "\n".join(lines)


def forme_keyboard(tracks: Sequence[recsys.Track], ratings: Mapping[str, int]) -> InlineKeyboardMarkup:
    """Rating buttons for the songs, and "more for me"."""
    rows = rating_rows(tracks, 1, FOR_ME, ratings)
    again = button("🎯 More for me", ForMe())
    return InlineKeyboardMarkup([*rows, *([[again]] if again else [])])


def likes_text(liked: Sequence[tuple[int, recsys.Track | None]], offset: int, total: int) -> str:
    """A page of liked songs, newest first; a song the catalogue no longer has is shown by its id."""
    if not total:
        return LIKES_EMPTY
    lines = [f"👍 <b>Your likes</b> ({offset + 1}–{offset + len(liked)} of {total}, newest first)", ""]
    for rank, track in liked:
        lines.append(track_line(rank, track, 48) if track else f"{rank}. (no longer in the catalogue)")
    lines += ["", "Tap ✖ to remove a like."]
    return "\n".join(lines)


def likes_keyboard(track_ids: Sequence[str], offset: int, total: int) -> InlineKeyboardMarkup | None:
    """✖n buttons that remove a like, and the pages before and after."""
    removes = [b for i, t in enumerate(track_ids) if (b := button(f"✖{offset + i + 1}", Unlike(t, offset)))]
    rows = [removes[i : i + 5] for i in range(0, len(removes), 5)]
    pages = []
    if offset > 0:
        pages.append(button("◂ Newer", LikesPage(max(0, offset - LIKES_PAGE))))
    if offset + LIKES_PAGE < total:
        pages.append(button("Older ▸", LikesPage(offset + LIKES_PAGE)))
    rows.append([b for b in pages if b is not None])
    rows = [r for r in rows if r]
    return InlineKeyboardMarkup(rows) if rows else None


def _ago(when: dtm.datetime, now: dtm.datetime) -> str:
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def history_text(entries: Sequence[tuple[str, recsys.Track | None, dtm.datetime]], now: dtm.datetime) -> str:
    """The last requests: (kind, song or None, when), newest first."""
    if not entries:
        return HISTORY_EMPTY
    lines = ["🕘 <b>Your last requests</b> (tap to see the answer again)", ""]
    for rank, (kind, track, when) in enumerate(entries, start=1):
        what = (
            "🎯 songs for you"
            if kind == "forme"
            else (
                f"{esc(clip(track.name, 48))} — {esc(clip(track.artist, 32))}" if track else "a song no longer listed"
            )
        )
        lines.append(f"{rank}. {what} <i>({_ago(when, now)})</i>")
    return "\n".join(lines)


def history_keyboard(entries: Sequence[tuple[str, recsys.Track | None, dtm.datetime]]) -> InlineKeyboardMarkup | None:
    """One numbered button per request that can be answered again."""
    buttons = []
    for rank, (kind, track, _) in enumerate(entries, start=1):
        action = ForMe() if kind == "forme" else (Pick(track.track_id) if track else None)
        if action is not None and (b := button(str(rank), action)):
            buttons.append(b)
    rows = [buttons[i : i + 5] for i in range(0, len(buttons), 5)]
    return InlineKeyboardMarkup(rows) if rows else None


def forget_keyboard() -> InlineKeyboardMarkup:
    """The confirmation of /forget."""
    yes, no = button("Yes, delete everything", Forget(True)), button("Cancel", Forget(False))
    assert yes is not None and no is not None
    return InlineKeyboardMarkup([[yes], [no]])


def forgotten_text(rows: int) -> str:
    """After /forget."""
    return f"🗑 Done: I deleted everything I stored about you ({rows} records). /likes is empty now."


def counts_line(listeners: int | None, ratings: int | None) -> str:
    """The /status line about people's data (None: the database could not be read)."""
    if listeners is None or ratings is None:
        return "Listeners: database unavailable"
    return f"Listeners: {listeners:,}, ratings: {ratings:,}"
