"""Every text and keyboard the bot sends: HTML-escaped, within 4096 characters, callback data under 64 bytes."""

from __future__ import annotations

import datetime as dtm
import html
import math
from collections.abc import Iterable, Mapping, Sequence

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

import recsys
from bot.actions import (  # noqa: F401  (callback data is bot.actions'; handlers and tests read it here too)
    MAX_CALLBACK_BYTES,
    MAX_OFFSET,
    MAX_PAGES,
    PAGE_SIZE,
    Action,
    AdminRetrain,
    More,
    NoneOfThese,
    Pick,
    Rate,
    Why,
    decode,
    encode,
    is_page,
)

MAX_MESSAGE_LENGTH = 4096
MAX_QUERY_LENGTH = 200  # longer than any real "title - artist"; more is a paste, not a song name
LIKE, DISLIKE, CHECK = "👍", "👎", " ✓"  # the rating buttons' marks; ✓ shows the person's current rating
SONGS_PER_ROW = 2  # two songs' 👍 and 👎 per keyboard row: four buttons fit a phone's width

COMMANDS: tuple[BotCommand, ...] = (
    BotCommand("recommend", "Songs like the one you name"),
    BotCommand("forme", "Songs for me, from what I liked"),
    BotCommand("mix", "A 20-song mix from 2-5 songs: /mix a; b; c"),
    BotCommand("groupmix", "A mix from this group's likes (in groups)"),
    BotCommand("mood", "Songs for a mood, activity, genre or decade"),
    BotCommand("likes", "The songs I liked"),
    BotCommand("history", "My last requests"),
    BotCommand("export", "Everything stored about me, as a file"),
    BotCommand("forget", "Delete everything stored about me"),
    BotCommand("help", "How to use this bot"),
    BotCommand("start", "Say hello"),
    BotCommand("status", "Model status (admins)"),
    BotCommand("retrain", "Retrain the model now (admins)"),
    BotCommand("backup", "Copy the listeners' database (admins)"),
)


def esc(text: object) -> str:
    """Escape for Telegram's HTML parse mode."""
    return html.escape(str(text), quote=True)


def clip(text: str, limit: int) -> str:
    """Shorten to at most `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def button(text: str, action: Action) -> InlineKeyboardButton | None:
    """A callback button, or None when its data would exceed Telegram's 64 bytes (a very long id)."""
    try:
        return InlineKeyboardButton(clip(text, 60), callback_data=encode(action))
    except ValueError:
        return None  # an id too long for a button: show the song without one


# ----- the answer -----


def _track_title(track: recsys.Track, name_limit: int) -> str:
    return f'<a href="{esc(track.url)}">{esc(clip(track.name, name_limit))}</a> — {esc(clip(track.artist, name_limit))}'


def _details(track: recsys.Track, name_limit: int) -> str:
    parts = [clip(track.album, name_limit)] if track.album else []
    if track.year:
        parts.append(str(track.year))
    return f" ({esc(', '.join(parts))})" if parts else ""


def track_line(rank: int, track: recsys.Track, name_limit: int, with_reason: bool = True) -> str:
    """One numbered song with its link, album and year, and its reason on the next line."""
    line = f"{rank}. {_track_title(track, name_limit)}{_details(track, name_limit)}"
    if with_reason and track.reason:
        line += f"\n    <i>{esc(clip(track.reason, 60))}</i>"
    return line


def answer_text(seed: recsys.Track, tracks: Sequence[recsys.Track], *, offset: int = 0) -> str:
    """The numbered list of songs like `seed`; shortens names until it fits Telegram's limit."""
    for name_limit, with_reasons in ((80, True), (48, True), (32, True), (24, False), (12, False)):
        head = "More songs like" if offset else "Songs like"
        lines = [f"🎧 <b>{head}</b> {_track_title(seed, name_limit)}{_details(seed, name_limit)}", ""]
        lines += [track_line(rank, t, name_limit, with_reasons) for rank, t in enumerate(tracks, start=offset + 1)]
        if not tracks:
            lines.append("That is all I have for this one.")
        text = "\n".join(lines)
        if len(text) <= MAX_MESSAGE_LENGTH:
            return text
    return clip(text, MAX_MESSAGE_LENGTH)  # pragma: no cover - 11 lines of 12-character names always fit


def answer_keyboard(
    seed_id: str,
    next_offset: int,
    has_more: bool,
    tracks: Sequence[recsys.Track] = (),
    ratings: Mapping[str, int] | None = None,
    others: Sequence[recsys.SearchHit] = (),
) -> InlineKeyboardMarkup | None:
    """👍/👎 for each listed song (ranks next_offset - PAGE_SIZE + 1 ...), the other versions of the asked song one
    tap away ("↪ Title — Artist (album)"), "why these?", and "more like this" while there is a next page."""
    rows = rating_rows(tracks, next_offset - PAGE_SIZE + 1, seed_id, ratings or {})
    for hit in others:
        t = hit.track
        other = button(f"↪ {t.name} — {t.artist}" + (f" ({t.album})" if t.album else ""), Pick(t.track_id))
        if other is not None:
            rows.append([other])
    why = button("📊 Why these?", Why(seed_id, next_offset - PAGE_SIZE)) if tracks else None
    more = button("More like this ▸", More(seed_id, next_offset)) if has_more and is_page(next_offset) else None
    last = [b for b in (why, more) if b is not None]
    if last:
        rows.append(last)
    return InlineKeyboardMarkup(rows) if rows else None


def rating_rows(
    tracks: Sequence[recsys.Track], first_rank: int, source: str, ratings: Mapping[str, int]
) -> list[list[InlineKeyboardButton]]:
    """👍n / 👎n buttons for each listed song, numbered like the list; ✓ marks the person's current rating."""
    buttons: list[InlineKeyboardButton] = []
    for rank, track in enumerate(tracks, start=first_rank):
        for value, mark in ((1, LIKE), (-1, DISLIKE)):
            b = button(
                f"{mark}{rank}{CHECK if ratings.get(track.track_id) == value else ''}",
                Rate(track.track_id, value, source),
            )
            if b is not None:
                buttons.append(b)
    per_row = 2 * SONGS_PER_ROW
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def without_more(markup: InlineKeyboardMarkup) -> InlineKeyboardMarkup | None:
    """The keyboard without its "more like this" button (the rating buttons and "why these?" stay)."""
    rows = [
        [b for b in row if not isinstance(decode(b.callback_data if isinstance(b.callback_data, str) else None), More)]
        for row in markup.inline_keyboard
    ]
    rows = [r for r in rows if r]
    return InlineKeyboardMarkup(rows) if rows else None


def rerated(markup: InlineKeyboardMarkup, track_id: str, value: int | None) -> InlineKeyboardMarkup:
    """The same keyboard with one song's ✓ moved to its rating now (value None: unrated)."""
    rows = []
    for row in markup.inline_keyboard:
        new_row = []
        for b in row:
            action = decode(b.callback_data if isinstance(b.callback_data, str) else None)
            if isinstance(action, Rate) and action.track_id == track_id:
                label = b.text.removesuffix(CHECK) + (CHECK if action.value == value else "")
                b = InlineKeyboardButton(label, callback_data=b.callback_data)
            new_row.append(b)
        rows.append(new_row)
    return InlineKeyboardMarkup(rows)


def choices_text(query: str, count: int = 2) -> str:
    """The question above the candidate buttons."""
    if count == 1:
        return f"🔎 Did you mean this song for <b>{esc(clip(query, 60))}</b>?"
    return f"🔎 I found several songs for <b>{esc(clip(query, 60))}</b>. Which one do you mean?"


def choices_keyboard(hits: Iterable[recsys.SearchHit]) -> InlineKeyboardMarkup:
    """One button per candidate ("Title — Artist") and a "none of these" button."""
    rows = [[b] for h in hits if (b := button(f"{h.track.name} — {h.track.artist}", Pick(h.track.track_id)))]
    none = button("None of these", NoneOfThese())
    assert none is not None
    rows.append([none])
    return InlineKeyboardMarkup(rows)


def no_match_text(query: str, closest: Sequence[recsys.SearchHit]) -> str:
    """No song matched; offer the closest names."""
    text = f"😕 I could not find <b>{esc(clip(query, 60))}</b> in my catalogue."
    if closest:
        names = "\n".join(f"• {esc(clip(h.track.name, 60))} — {esc(clip(h.track.artist, 40))}" for h in closest)
        text += f"\n\nThe closest names I know:\n{names}\n\nTap one below, or try another spelling."
    else:
        text += "\n\nTry the song title, optionally followed by the artist."
    return text


def no_match_keyboard(closest: Sequence[recsys.SearchHit]) -> InlineKeyboardMarkup | None:
    """Buttons for the closest names, so a near miss is one tap away."""
    rows = [[b] for h in closest if (b := button(f"{h.track.name} — {h.track.artist}", Pick(h.track.track_id)))]
    return InlineKeyboardMarkup(rows) if rows else None


USAGE = (
    "Tell me a song and I will find ten more like it. In any chat, type my @name and a song to share it.\n\n"
    "<b>Examples</b>\n"
    "<code>/recommend Blinding Lights</code>\n"
    "<code>/recommend Shape of You - Ed Sheeran</code>\n"
    "or just send the song name as a message."
)


def start_text(first_name: str | None, info: recsys.SnapshotInfo | None = None) -> str:
    """The greeting, saying what the loaded model knows."""
    who = f", {esc(clip(first_name, 40))}" if first_name else ""
    graph = f"{info.num_playlists:,} playlists and {info.num_tracks:,} songs" if info else "playlists"
    return f"👋 Hi{who}! I recommend music from a graph of {graph}.\n\n{USAGE}"


def help_text(is_admin: bool) -> str:
    """The command list (admins see their commands too)."""
    text = (
        f"{USAGE}\n\nTap 👍 or 👎 under any song: I remember it and learn your taste.\n\n<b>Commands</b>\n"
        "/recommend &lt;song&gt; — ten songs like it, with Spotify links\n"
        "/forme — ten songs for you, from what you liked\n"
        "/mix song; song; song — a 20-song mix from 2 to 5 songs, with .m3u and .csv files\n"
        "/groupmix — in a group: a mix from what its members liked\n"
        "/mood &lt;words&gt; — songs for a mood, activity, genre or decade (rainy day, gym, 90s rock)\n"
        "/likes — the songs you liked (remove any)\n"
        "/history — your last requests, one tap from their answers\n"
        "/export — everything I store about you, as a CSV file\n"
        "/forget — delete everything I store about you\n"
        "/help — this message"
    )
    if is_admin:
        text += (
            "\n/status — model version, metrics, schedule and listeners\n/retrain — train a new model now\n"
            "/backup — a consistent copy of the listeners' database"
        )
    return text


TOO_LONG = (
    f"That is longer than any song title I know (over {MAX_QUERY_LENGTH} characters). "
    "Please send just the title, optionally with the artist."
)
NO_LETTERS = "I need a few letters or digits of the song title to search for. Try <code>/recommend Yellow</code>."
NONE_OF_THESE = "OK. Try the title together with the artist, e.g. <code>/recommend Yellow - Coldplay</code>."
EXPIRED = "⌛ This button has expired (the catalogue changed since). Send /recommend with the song again."
NOT_ADMIN = "Sorry, only the bot's admins can do that."
RATE_LIMITED = "🐢 You are going a bit fast. Please wait a few seconds and try again."
STARTING = "I am still loading the model; please try again in a moment."
WHY_CAPTION = "📊 How {seed} sounds beside the songs I recommended for it."
APOLOGY = "😵 Sorry, something went wrong on my side. The admins have been told; please try again."


def friendly_error(exc: BaseException) -> str:
    """The one mapping from recsys errors to what a user reads."""
    if isinstance(exc, recsys.UnknownTrackError):
        return EXPIRED
    if isinstance(exc, recsys.SnapshotError):
        return STARTING
    return APOLOGY


# ----- admin texts -----


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4f}"


def _metrics(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "none"
    return ", ".join(f"{k} {_number(v)}" for k, v in sorted(metrics.items()))


def model_lines(info: recsys.SnapshotInfo) -> str:
    """Version, training and catalogue facts of a snapshot."""
    return (
        f"<b>Model</b> <code>{esc(info.version)}</code> ({esc(info.model_kind)})\n"
        f"Trained {esc(info.created_at)} in {info.train_seconds:.1f} s\n"
        f"Data <code>{esc(info.data_fingerprint[:12])}</code>: {info.num_tracks:,} tracks, "
        f"{info.num_playlists:,} playlists\n"
        f"Metrics: {esc(_metrics(info.metrics))}"
    )


def status_text(
    info: recsys.SnapshotInfo | None,
    *,
    schedule: str,
    next_run: dtm.datetime | None,
    uptime_s: float,
    counts: Mapping[str, int],
    retraining: bool,
    last_retrain: str | None,
    people: str | None = None,
) -> str:
    """The /status report (`people`: the listeners' line)."""
    hours, rest = divmod(int(uptime_s), 3600)
    lines = [model_lines(info) if info else "<b>Model</b> not loaded yet"]
    when = next_run.astimezone(dtm.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if next_run else "—"
    lines.append(f"Retraining: {esc(schedule)}; next {when}{' (running now)' if retraining else ''}")
    if last_retrain:
        lines.append(f"Last retrain: {esc(last_retrain)}")
    if people:
        lines.append(esc(people))
    lines.append(f"Uptime {hours}h {rest // 60:02d}m {rest % 60:02d}s")
    lines.append("Requests: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else "Requests: 0")
    return "\n".join(lines)


def status_keyboard() -> InlineKeyboardMarkup:
    """The admin's "retrain now" button."""
    retrain = button("🔁 Retrain now", AdminRetrain())
    assert retrain is not None
    return InlineKeyboardMarkup([[retrain]])


def error_alert_text(update_id: int | None, error: BaseException, *, suppressed: int, window_s: float) -> str:
    """The admins' alert for an unexpected error, with how many of its kind were held back before it."""
    text = f"⚠️ Error in update {update_id}: <code>{esc(clip(f'{type(error).__name__}: {error}', 800))}</code>"
    if suppressed:
        text += f"\n{suppressed} more of these were suppressed (one alert per {window_s / 60:g} min)."
    return text


RETRAIN_STARTED = "🔁 Retraining started. I keep answering with the current model and report back when done."
RETRAIN_BUSY = "⏳ A retrain is already running; I will report when it finishes."


def retrain_done_text(info: recsys.SnapshotInfo, previous: str | None, seconds: float) -> str:
    """A successful retrain, with the new model's metrics."""
    return f"✅ Retrain done in {seconds:.0f} s; now serving the new model (was <code>{esc(previous)}</code>).\n" + (
        model_lines(info)
    )


def retrain_failed_text(error: str | None, serving: str | None) -> str:
    """A failed retrain: why, and what still serves."""
    return (
        f"❌ Retrain failed: {esc(clip(error or 'unknown error', 1500))}\n"
        f"Still serving the last good model <code>{esc(serving)}</code>."
    )


def retrain_unchanged_text(serving: str | None) -> str:
    """A scheduled retrain with nothing to do."""
    return f"The data has not changed; still serving <code>{esc(serving)}</code>."
