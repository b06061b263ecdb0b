"""Handlers for a person's own data: 👍/👎 taps, /likes, /forme, /history, /forget, /export, and the admin's /backup.

Every database call runs in a worker thread; a failure is told to the person (their rating was not saved) and
logged, and never stops recommendations.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import io
import logging
from collections.abc import Callable
from typing import TypeVar

from telegram import InlineKeyboardMarkup, InputFile, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

import recsys
from bot import formatting as fmt
from bot import personal
from bot.actions import FOR_ME, MOOD, Forget, LikesPage, Rate, Unlike
from bot.db import RatingStore, StoreError
from bot.state import BotState, edit, require_admin, state_of

log = logging.getLogger(__name__)

T = TypeVar("T")
# Songs shown to a person this recently are ranked down in /forme (they have seen them; new ones first).
SHOWN_RECENTLY = dtm.timedelta(days=7)
# /forme looks at this many of the newest likes: enough for a taste, bounded work per request.
FORME_LIKES = 200
HISTORY = 20
DB_DOWN = "😕 I cannot reach my memory of your likes right now; please try again later. /recommend still works."


async def store_call(state: BotState, work: Callable[[RatingStore], T]) -> T:
    """Run one store call in a worker thread; StoreError (also for a store that could not be opened) on failure."""
    store = state.store
    if store is None:
        raise StoreError("the listeners' database is not available (it failed to open at start-up)")
    return await asyncio.to_thread(work, store)


async def remember(state: BotState, user_id: int, kind: str, track_id: str | None, shown: list[str]) -> None:
    """Record a request and what it showed; a failure is only logged (the person got their answer)."""
    try:
        await store_call(state, lambda s: s.record_request(user_id, kind, track_id))
        if shown:
            await store_call(state, lambda s: s.record_impressions(user_id, shown))
    except StoreError as exc:
        log.warning("could not record a request of user %s: %s", user_id, exc)


async def ratings_for(state: BotState, user_id: int, track_ids: list[str]) -> dict[str, int]:
    """The person's ratings of listed songs (for the ✓ on the buttons); none when the database is down."""
    try:
        return await store_call(state, lambda s: s.ratings_of(user_id, track_ids))
    except StoreError as exc:
        log.warning("could not read ratings of user %s: %s", user_id, exc)
        return {}


def _user_id(update: Update) -> int | None:
    return update.effective_user.id if update.effective_user else None


async def _in_private(update: Update) -> bool:
    """Whether the chat is private; in a group, one's likes, history and data are not shown (nor changed)."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None or chat.type == "private":
        return True
    if message is not None:
        await message.reply_text(personal.PRIVATE_ONLY)
    return False


# ----- 👍 / 👎 -----


async def rate(update: Update, context: ContextTypes.DEFAULT_TYPE, action: Rate) -> None:
    """A 👍 or 👎 tap: saved (committed) before the button changes; the same tap again undoes it."""
    query = update.callback_query
    assert query is not None
    state = state_of(context)
    source = {FOR_ME: "forme", MOOD: "mood"}.get(action.source, f"similar:{action.source}")
    try:
        value = await store_call(state, lambda s: s.rate(query.from_user.id, action.track_id, action.value, source))
    except StoreError as exc:
        log.warning("could not save a rating of user %s: %s", query.from_user.id, exc)
        state.counts["ratings_failed"] += 1
        await query.answer(personal.NOT_SAVED, show_alert=True)
        return
    state.counts["ratings"] += 1
    await query.answer(personal.rated_answer(value))
    message = query.message
    # The ✓ shows one person's rating: only on their private chat's message, not on a group's, which is everyone's.
    if isinstance(message, Message) and message.reply_markup is not None and message.chat.type == "private":
        with contextlib.suppress(BadRequest):
            await query.edit_message_reply_markup(fmt.rerated(message.reply_markup, action.track_id, value))


# ----- /likes -----


async def _likes_page(state: BotState, user_id: int, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
    total = await store_call(state, lambda s: s.count_likes(user_id))
    offset = max(0, min(offset, max(total - 1, 0)) // personal.LIKES_PAGE * personal.LIKES_PAGE)
    rated = await store_call(state, lambda s: s.likes_of(user_id, personal.LIKES_PAGE, offset))
    liked = [(offset + i + 1, _track_or_none(state, r.track_id)) for i, r in enumerate(rated)]
    ids = [r.track_id for r in rated]
    return personal.likes_text(liked, offset, total), personal.likes_keyboard(ids, offset, total)


def _track_or_none(state: BotState, track_id: str) -> recsys.Track | None:
    try:
        return state.service.snapshot.track(track_id)
    except recsys.UnknownTrackError:
        return None


async def likes(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/likes: my liked songs, newest first, ten a page, each removable."""
    if not await _in_private(update):
        return
    user_id, message = _user_id(update), update.effective_message
    if user_id is None or message is None:
        return
    try:
        text, markup = await _likes_page(state_of(context), user_id, 0)
    except StoreError as exc:
        log.warning("could not read likes of user %s: %s", user_id, exc)
        text, markup = DB_DOWN, None
    await message.reply_text(text, reply_markup=markup)


async def likes_button(update: Update, context: ContextTypes.DEFAULT_TYPE, action: Unlike | LikesPage) -> None:
    """✖ (remove a like) or a page of /likes: the message is edited in place."""
    query = update.callback_query
    assert query is not None
    state, user_id = state_of(context), query.from_user.id
    try:
        if isinstance(action, Unlike):
            current = await store_call(state, lambda s: s.ratings_of(user_id, [action.track_id]))
            if current.get(action.track_id) != 1:  # a second tap on ✖: already gone, and must not like it again
                await query.answer("Already removed")
                return
            await store_call(state, lambda s: s.rate(user_id, action.track_id, 1, "likes"))
        text, markup = await _likes_page(state, user_id, action.offset)
    except StoreError as exc:
        log.warning("could not change likes of user %s: %s", user_id, exc)
        await query.answer(personal.NOT_SAVED, show_alert=True)
        return
    await query.answer("Removed" if isinstance(action, Unlike) else None)
    await edit(query, text, markup)


# ----- /forme -----


async def _forme(state: BotState, user_id: int) -> tuple[str, InlineKeyboardMarkup | None]:
    liked = await store_call(state, lambda s: s.likes_of(user_id, FORME_LIKES))
    if not liked:
        return personal.NO_LIKES_YET, None
    dislikes = await store_call(state, lambda s: s.dislikes_of(user_id))
    since = dtm.datetime.now(dtm.UTC) - SHOWN_RECENTLY
    shown = await store_call(state, lambda s: s.shown_since(user_id, since))
    try:
        tracks = await state.service.for_me([r.track_id for r in liked], dislikes, str(user_id), sorted(shown))
    except recsys.InvalidQueryError:  # every liked song left the catalogue at a retrain
        return personal.NO_LIKES_YET, None
    state.counts["forme"] += 1
    await remember(state, user_id, "forme", None, [t.track_id for t in tracks])
    return personal.forme_text(tracks), personal.forme_keyboard(tracks, {})


async def forme(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forme: ten songs for me from everything I liked and disliked."""
    user_id, message = _user_id(update), update.effective_message
    if user_id is None or message is None:
        return
    try:
        text, markup = await _forme(state_of(context), user_id)
    except StoreError as exc:
        log.warning("could not read the likes of user %s: %s", user_id, exc)
        text, markup = DB_DOWN, None
    await message.reply_text(text, reply_markup=markup)


async def forme_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "More for me" (or a /forme of /history): a new message, so the last list stays rateable."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    try:
        text, markup = await _forme(state_of(context), query.from_user.id)
    except StoreError:
        text, markup = DB_DOWN, None
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def prune_impressions(context: ContextTypes.DEFAULT_TYPE) -> int:
    """The daily job: forget what was shown longer ago than /forme looks back (plus a day); returns rows deleted."""
    before = dtm.datetime.now(dtm.UTC) - SHOWN_RECENTLY - dtm.timedelta(days=1)
    try:
        deleted = await store_call(state_of(context), lambda s: s.prune_impressions(before))
    except StoreError as exc:
        log.warning("could not prune old impressions: %s", exc)
        return 0
    log.info("pruned %d impressions older than %s", deleted, before.date())
    return deleted


# ----- /history, /forget, /export, /backup -----


async def history(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/history: my last 20 requests, each one tap away from its answer."""
    if not await _in_private(update):
        return
    user_id, message = _user_id(update), update.effective_message
    if user_id is None or message is None:
        return
    state = state_of(context)
    try:
        requests = await store_call(state, lambda s: s.history_of(user_id, HISTORY))
    except StoreError:
        await message.reply_text(DB_DOWN)
        return
    entries = [
        (r.kind, _track_or_none(state, r.track_id) if r.track_id else None, r.created_at)
        for r in requests
        if r.kind == "forme" or r.track_id
    ]
    now = dtm.datetime.now(dtm.UTC)
    await message.reply_text(personal.history_text(entries, now), reply_markup=personal.history_keyboard(entries))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: ask before deleting everything stored about me."""
    if not await _in_private(update):
        return
    if update.effective_message is not None:
        await update.effective_message.reply_text(personal.FORGET_QUESTION, reply_markup=personal.forget_keyboard())


async def forget_button(update: Update, context: ContextTypes.DEFAULT_TYPE, action: Forget) -> None:
    """The answer to /forget's question; only ever the tapping person's own data."""
    query = update.callback_query
    assert query is not None
    if not action.confirmed:
        await query.answer()
        await edit(query, personal.FORGET_CANCELLED)
        return
    try:
        rows = await store_call(state_of(context), lambda s: s.forget(query.from_user.id))
    except StoreError as exc:
        log.warning("could not forget user %s: %s", query.from_user.id, exc)
        await query.answer(personal.NOT_SAVED, show_alert=True)
        return
    await query.answer("Deleted")
    await edit(query, personal.forgotten_text(rows))


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export: everything stored about me, as a CSV document."""
    if not await _in_private(update):
        return
    user_id, message = _user_id(update), update.effective_message
    if user_id is None or message is None:
        return
    try:
        text = await store_call(state_of(context), lambda s: s.export_csv(user_id))
    except StoreError:
        await message.reply_text(DB_DOWN)
        return
    if len(text.splitlines()) <= 1:  # the header only
        await message.reply_text(personal.NOTHING_STORED)
        return
    document = InputFile(io.BytesIO(text.encode("utf-8")), filename="musicrec-my-data.csv")
    await message.reply_document(document, caption=personal.EXPORT_CAPTION)


async def backup(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins only: a consistent copy of the listeners' database next to it."""
    message = update.effective_message
    if message is None or not await require_admin(update, context):
        return
    try:
        path = await store_call(state_of(context), lambda s: s.backup())
    except StoreError as exc:
        await message.reply_text(f"❌ Backup failed: {fmt.esc(exc)}")
        return
    await message.reply_text(f"💾 Backup written to <code>{fmt.esc(path)}</code>")
