"""Handlers for mixes and inline mode: /mix, /groupmix, and "@bot <song>" in any chat."""

from __future__ import annotations

import asyncio
import logging

from telegram import InputFile, Message, Update
from telegram.ext import ContextTypes

import recsys
from bot import formatting as fmt
from bot import mixes
from bot.actions import MOOD, PAGE_SIZE
from bot.db import StoreError
from bot.personal_handlers import ratings_for, remember, store_call
from bot.state import BotState, state_of

log = logging.getLogger(__name__)

# /groupmix takes at most this many of each member's newest likes, so one enthusiastic member does not drown
# the others out.
GROUP_LIKES_EACH = 10
PAGE = PAGE_SIZE  # songs for a mood


def _is_group(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type in ("group", "supergroup")


async def _send_mix(message: Message, heading: str, tracks: list[recsys.Track], name: str) -> None:
    """The mix as a message, then as an .m3u playlist and a .csv table."""
    await message.reply_text(mixes.mix_text(heading, tracks))
    for suffix, content in (("m3u", mixes.m3u(tracks)), ("csv", mixes.csv_bytes(tracks))):
        await message.reply_document(InputFile(content, filename=f"{name}.{suffix}"), do_quote=False)


async def mix(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/mix song; song; song — a 20-song playlist continuing 2 to 5 songs, each named as for /recommend."""
    message = update.effective_message
    if message is None:
        return
    state = state_of(context)
    queries = mixes.split_seeds((message.text or "").partition(" ")[2])
    if not mixes.MIN_SEEDS <= len(queries) <= mixes.MAX_SEEDS:
        await message.reply_text(mixes.MIX_USAGE)
        return
    resolutions = await asyncio.gather(*(state.service.resolve(q) for q in queries))
    problems = [(q, r) for q, r in zip(queries, resolutions, strict=True) if r.kind != "match"]
    if problems:
        await message.reply_text(mixes.unresolved_text(problems))
        return
    seeds = [r.hits[0].track for r in resolutions]
    tracks = await state.service.mix([s.track_id for s in seeds], mixes.MIX_SIZE)
    state.counts["mixes"] += 1
    await _send_mix(message, mixes.mix_heading(seeds), tracks, "musicrec-mix")
    if update.effective_user is not None:
        await remember(state, update.effective_user.id, "mix", None, [t.track_id for t in tracks])


async def mood(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/mood <words> — songs for a mood, activity, genre or decade (recsys's recommend_for_text)."""
    message = update.effective_message
    if message is None:
        return
    words = (message.text or "").partition(" ")[2].strip()[:200]
    if not words:
        await message.reply_text(mixes.MOOD_USAGE)
        return
    state = state_of(context)
    try:
        tracks = await state.service.for_text(words, PAGE)
    except recsys.InvalidQueryError as exc:  # no word it knows: say which, never random songs
        await message.reply_text(f"🌦 {fmt.esc(exc)}\n\n{mixes.MOOD_USAGE}")
        return
    state.counts["moods"] += 1
    private = message.chat.type == "private"
    user_id = update.effective_user.id if update.effective_user else message.chat_id
    ids = [t.track_id for t in tracks]
    ratings = await ratings_for(state, user_id, ids) if private else {}
    markup = fmt.InlineKeyboardMarkup(fmt.rating_rows(tracks, 1, MOOD, ratings))
    await message.reply_text(mixes.mood_text(words, tracks), reply_markup=markup)
    await remember(state, user_id, "mood", None, ids)


async def groupmix(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/groupmix — a mix from the likes of this group's members who have rated songs."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    if not _is_group(update):
        await message.reply_text(mixes.GROUP_ONLY)
        return
    state = state_of(context)
    try:
        members = await store_call(state, lambda s: s.group_ratings(chat.id, GROUP_LIKES_EACH))
    except StoreError as exc:
        log.warning("could not read the ratings of group %s: %s", chat.id, exc)
        members = {}
    likes = _interleaved([liked for liked, _ in members.values()])
    dislikes = sorted({track for _, disliked in members.values() for track in disliked} - set(likes))
    if not likes:
        await message.reply_text(mixes.NOBODY_RATED)
        return
    try:
        tracks = await state.service.for_me(likes, dislikes, None, [], k=mixes.MIX_SIZE)
    except recsys.InvalidQueryError:  # every liked song left the catalogue at a retrain
        await message.reply_text(mixes.NOBODY_RATED)
        return
    state.counts["group_mixes"] += 1
    who = f"{len(members)} member{'s' if len(members) != 1 else ''}"
    await _send_mix(message, f"🎚 <b>A mix for this group</b>, from what {who} liked", tracks, "musicrec-group-mix")


def _interleaved(lists: list[list[str]]) -> list[str]:
    """Round-robin over each member's likes (newest first), without repeats: everyone is heard."""
    out: list[str] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x) and x[i] not in out]
    return out


async def note_group_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Remember who uses the bot in a group (whose likes /groupmix mixes), once per group and person and run."""
    user = update.effective_user
    if user is None or not _is_group(update) or update.effective_chat is None:
        return
    state: BotState = state_of(context)
    key = (update.effective_chat.id, user.id)
    if key in state.group_members_seen:
        return
    try:
        await store_call(state, lambda s: s.note_group_member(key[0], key[1]))
        state.group_members_seen.add(key)
    except StoreError as exc:
        log.warning("could not remember a member of group %s: %s", key[0], exc)


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "@bot <song>" in any chat: matching songs; choosing one posts its card (the song, five like it, links)."""
    query = update.inline_query
    if query is None:
        return
    text = query.query.strip()
    if len(text) < 2 or not any(ch.isalnum() for ch in text):
        await query.answer([], cache_time=mixes.INLINE_CACHE_S)
        return
    state = state_of(context)
    state.counts["inline"] += 1
    cards = await state.service.inline_cards(text[:200], mixes.INLINE_RESULTS, mixes.CARD_SIZE)
    articles = [mixes.inline_article(seed, tracks) for seed, tracks in cards]
    await query.answer(articles, cache_time=mixes.INLINE_CACHE_S, is_personal=False)
