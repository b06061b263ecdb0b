"""Flat async handlers: each reads the shared BotState, asks the MusicService, and replies via bot.formatting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import cast

from telegram import CallbackQuery, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes

import recsys
from bot import formatting as fmt
from bot import personal, personal_handlers
from bot.actions import AdminRetrain, Forget, ForMe, LikesPage, Rate, Unlike, Why
from bot.db import StoreError
from bot.service import RetrainBusyError, RetrainOutcome
from bot.state import BotState, edit, require_admin, state_of

log = logging.getLogger(__name__)

RETRAIN_JOB = "scheduled-retrain"
TYPING_DELAY_S = 1.0  # answers faster than this need no "typing…" indicator
# Refusals Telegram sends when a user double-taps or a button waits too long: harmless, nothing to fix.
HARMLESS_BAD_REQUESTS = ("message is not modified", "query is too old")


# ----- helpers -----


@contextlib.asynccontextmanager
async def _typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" only when an answer takes long enough for the user to notice."""

    async def later() -> None:
        await asyncio.sleep(TYPING_DELAY_S)
        with contextlib.suppress(TelegramError):
            await context.bot.send_chat_action(chat_id, "typing")

    task = asyncio.create_task(later())
    try:
        yield
    finally:
        task.cancel()


async def _notify_admins(application: Application, text: str, *, also: int | None = None) -> None:
    """Send to every admin (and `also`, the requester) once each; an unreachable admin is only logged."""
    state = cast(BotState, application.bot_data["state"])
    for chat_id in sorted(set(state.settings.admin_ids) | ({also} if also is not None else set())):
        try:
            await application.bot.send_message(chat_id, text)
        except TelegramError as exc:
            log.warning("could not notify admin %s: %s", chat_id, exc)


def _query_text(message: Message) -> str:
    """The song part of "/recommend <song>" or of a plain message, spacing kept."""
    text = message.text or ""
    if text.startswith("/"):
        return text.partition(" ")[2] if " " in text else text.partition("\n")[2]
    return text


async def _answer_song(message: Message, query: str, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The whole /recommend flow for one piece of text."""
    state = state_of(context)
    query = query.strip()
    if not query:
        await message.reply_text(fmt.USAGE)
        return
    if len(query) > fmt.MAX_QUERY_LENGTH:
        await message.reply_text(fmt.TOO_LONG)
        return
    if not any(ch.isalnum() for ch in query):
        await message.reply_text(fmt.NO_LETTERS)
        return
    async with _typing(context, message.chat_id):
        resolution = await state.service.resolve(query)
        if resolution.kind == "match":
            seed = resolution.hits[0].track
            tracks = await state.service.recommend(seed.track_id, k=fmt.PAGE_SIZE + 1)
    state.counts[f"search_{resolution.kind}"] += 1
    if resolution.kind == "match":
        user_id = message.from_user.id if message.from_user else message.chat_id
        private = message.chat.type == "private"
        text, markup, shown = await _page(state, user_id, seed, tracks, 0, private, resolution.others)
        await message.reply_text(text, reply_markup=markup)
        if message.from_user is not None:
            await personal_handlers.remember(state, message.from_user.id, "song", seed.track_id, shown)
    elif resolution.kind == "ambiguous":
        await message.reply_text(
            fmt.choices_text(query, len(resolution.hits)), reply_markup=fmt.choices_keyboard(resolution.hits)
        )
    else:
        await message.reply_text(
            fmt.no_match_text(query, resolution.hits), reply_markup=fmt.no_match_keyboard(resolution.hits)
        )


async def _page(
    state: BotState,
    user_id: int,
    seed: recsys.Track,
    tracks: list[recsys.Track],
    offset: int,
    private: bool,
    others: tuple[recsys.SearchHit, ...] = (),
) -> tuple[str, InlineKeyboardMarkup | None, list[str]]:
    """One page of songs like `seed` (tracks holds one more when there is a next page): the text, the keyboard with
    the person's ratings marked (in a private chat only: a group's message is everyone's), and the ids shown."""
    page = tracks[: fmt.PAGE_SIZE]
    shown = [t.track_id for t in page]
    ratings = await personal_handlers.ratings_for(state, user_id, shown) if private else {}
    has_more = len(tracks) > fmt.PAGE_SIZE
    markup = fmt.answer_keyboard(seed.track_id, offset + fmt.PAGE_SIZE, has_more, page, ratings, others)
    return fmt.answer_text(seed, page, offset=offset), markup, shown


async def _start_retrain(application: Application, chat_id: int) -> str:
    """Start a background retrain reporting to `chat_id`; returns the text to answer with right away."""
    service = cast(BotState, application.bot_data["state"]).service
    try:
        task = service.start_retrain(only_if_changed=False)
    except RetrainBusyError:
        return fmt.RETRAIN_BUSY
    application.create_task(_report_retrain(application, task, chat_id), name="retrain-report")
    return fmt.RETRAIN_STARTED


async def _report_retrain(application: Application, task: asyncio.Task[RetrainOutcome], chat_id: int | None) -> None:
    """Wait for a retrain and tell the requester and the admins how it went."""
    outcome = await task
    serving = outcome.info.version if outcome.info else None
    if outcome.status == "swapped" and outcome.info is not None:
        await _notify_admins(
            application, fmt.retrain_done_text(outcome.info, outcome.previous_version, outcome.seconds), also=chat_id
        )
    elif outcome.status == "failed":
        await _notify_admins(application, fmt.retrain_failed_text(outcome.error, serving), also=chat_id)
    elif chat_id is not None:
        await application.bot.send_message(chat_id, fmt.retrain_unchanged_text(serving))


# ----- handlers -----


async def rate_limit_gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Count searches and taps; stop a user who sends them too fast, with one polite reply."""
    state = state_of(context)
    user = update.effective_user
    message = update.message
    text = message.text if message is not None else None
    # Searches are plain texts and /recommend (also as /recommend@botname in groups); other commands are free.
    private = update.effective_chat is not None and update.effective_chat.type == "private"
    is_search = (
        text is not None
        and text != ""
        and ((private and not text.startswith("/")) or text.split(maxsplit=1)[0].split("@")[0] == "/recommend")
    )
    if user is None or not (is_search or update.callback_query is not None):
        return
    state.counts["buttons" if update.callback_query else "searches"] += 1
    if state.limiter.allow(user.id):
        return
    state.counts["rate_limited"] += 1
    log.info("rate limited user %s", user.id)
    if update.callback_query is not None:
        await update.callback_query.answer(fmt.RATE_LIMITED)
    elif message is not None and state.limiter.first_refusal(user.id):
        await message.reply_text(fmt.RATE_LIMITED)
    raise ApplicationHandlerStop


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user and show how to ask for songs."""
    if update.effective_message is None:
        return
    user, service = update.effective_user, state_of(context).service
    info = service.info if service.ready else None
    await update.effective_message.reply_text(fmt.start_text(user.first_name if user else None, info))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the commands (admins also see theirs)."""
    if update.effective_message is None:
        return
    is_admin = state_of(context).settings.is_admin(update.effective_user.id if update.effective_user else None)
    await update.effective_message.reply_text(fmt.help_text(is_admin))


async def recommend(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer /recommend <song> with ten songs like it, or ask which song was meant."""
    if update.message is None:
        return
    await _answer_song(update.message, _query_text(update.message), context)


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Treat a plain text message as /recommend <text>."""
    if update.message is None:
        return
    await _answer_song(update.message, update.message.text or "", context)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle a tap: a candidate, "more like this", "none of these", a rating, the person's own pages, or the
    admin's "retrain now"."""
    query = update.callback_query
    if query is None:
        return
    action = fmt.decode(query.data)
    match action:
        case AdminRetrain():
            await _retrain_button(update, context)
        case Why():
            await _why_button(query, context, action)
        case Rate():
            await personal_handlers.rate(update, context, action)
        case Unlike() | LikesPage():
            await personal_handlers.likes_button(update, context, action)
        case ForMe():
            await personal_handlers.forme_button(update, context)
        case Forget():
            await personal_handlers.forget_button(update, context, action)
        case _:
            # Answer at once (Telegram shows a spinner until then), and exactly once.
            await query.answer()
            await _song_button(query, context, action)


async def _retrain_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    if not await require_admin(update, context):
        await query.answer(fmt.NOT_ADMIN, show_alert=True)
        return
    chat_id = query.message.chat.id if query.message else query.from_user.id
    reply = await _start_retrain(context.application, chat_id)
    await query.answer("Retraining…" if reply == fmt.RETRAIN_STARTED else "Already running")
    await context.bot.send_message(chat_id, reply)


async def _why_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE, action: Why) -> None:
    """The "why these?" picture: the asked song's audio profile beside its recommendations', as a photo."""
    state = state_of(context)
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    try:
        seed = await state.service.track(action.track_id)
        png = await state.service.why_these(action.track_id, fmt.PAGE_SIZE, action.offset)
    except recsys.UnknownTrackError:
        state.counts["expired_buttons"] += 1
        await query.answer(fmt.EXPIRED, show_alert=True)
        return
    await query.answer()
    state.counts["pictures"] += 1
    caption = fmt.WHY_CAPTION.format(seed=f"<b>{fmt.esc(fmt.clip(seed.name, 60))}</b>")
    await context.bot.send_photo(chat_id, InputFile(png, filename="why-these.png"), caption=caption)


async def _song_button(query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE, action: fmt.Action | None) -> None:
    """A candidate (or a /history song), "more like this", "none of these", or an expired button."""
    state = state_of(context)
    user_id = query.from_user.id
    if isinstance(action, fmt.NoneOfThese):
        await edit(query, fmt.NONE_OF_THESE)
        return
    if not isinstance(action, fmt.Pick | fmt.More):
        state.counts["expired_buttons"] += 1
        await edit(query, fmt.EXPIRED)
        return
    offset = action.offset if isinstance(action, fmt.More) else 0
    try:
        seed = await state.service.track(action.track_id)
        tracks = await state.service.recommend(action.track_id, k=fmt.PAGE_SIZE + 1, offset=offset)
    except recsys.UnknownTrackError:
        state.counts["expired_buttons"] += 1
        if isinstance(action, fmt.More):
            await context.bot.send_message(user_id, fmt.EXPIRED)
        else:
            await edit(query, fmt.EXPIRED)
        return
    private = query.message is None or query.message.chat.type == "private"
    text, markup, shown = await _page(state, user_id, seed, tracks, offset, private)
    if isinstance(action, fmt.Pick):
        await edit(query, text, markup)
        await personal_handlers.remember(state, user_id, "song", seed.track_id, shown)
        return
    # The page moves to a new message; the old one keeps its rating buttons but loses "more", so a second tap
    # cannot repeat it.
    message = query.message
    if isinstance(message, Message) and message.reply_markup is not None:
        with contextlib.suppress(BadRequest):
            await query.edit_message_reply_markup(fmt.without_more(message.reply_markup))
    chat_id = message.chat.id if message is not None else user_id
    await context.bot.send_message(chat_id, text, reply_markup=markup)
    await personal_handlers.remember(state, user_id, "more", seed.track_id, shown)


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins only: train a new model in the background and report start, then success or failure."""
    if update.effective_message is None or not await require_admin(update, context):
        return
    reply = await _start_retrain(context.application, update.effective_message.chat_id)
    await update.effective_message.reply_text(reply)


async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins only: model version, metrics, schedule, uptime and request counts."""
    if update.effective_message is None or not await require_admin(update, context):
        return
    state = state_of(context)
    jobs = context.job_queue.get_jobs_by_name(RETRAIN_JOB) if context.job_queue else ()
    last = state.service.last_outcome
    last_text = None
    if last is not None:
        last_text = {"swapped": "succeeded", "unchanged": "skipped (nothing new)"}.get(
            last.status, f"failed: {last.error}"
        )
    counts: tuple[int | None, int | None]
    try:
        counts = await personal_handlers.store_call(state, lambda s: s.counts())
    except StoreError:
        counts = (None, None)
    await update.effective_message.reply_text(
        fmt.status_text(
            state.service.info if state.service.ready else None,
            schedule=state.settings.schedule_text(),
            next_run=jobs[0].next_t if jobs else None,
            uptime_s=time.monotonic() - state.started_at,
            counts=state.counts,
            retraining=state.service.retraining,
            last_retrain=last_text,
            people=personal.counts_line(*counts),
        ),
        reply_markup=fmt.status_keyboard(),
    )


async def scheduled_retrain(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The schedule's job: retrain only if the CSV changed; tell the admins about a new model or a failure."""
    service = state_of(context).service
    try:
        task = service.start_retrain(only_if_changed=True)
    except RetrainBusyError:
        log.info("scheduled retrain skipped: a retrain is already running")
        return
    # Awaited here (not fire-and-forget) so the job's max_instances=1 really covers the whole run.
    await _report_retrain(context.application, task, None)


def is_telegram_hiccup(error: BaseException) -> bool:
    """Telegram refused or dropped a call for reasons outside the bot: a user who blocked it, flood control after
    the retries, the network, a double tap. Nothing to fix, so nobody to tell."""
    if isinstance(error, BadRequest):  # a NetworkError subclass, but usually the bot's own mistake
        return any(text in error.message.lower() for text in HARMLESS_BAD_REQUESTS)
    return isinstance(error, Forbidden | RetryAfter | NetworkError)  # TimedOut is a NetworkError


async def error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every error; apologise for the bot's own; tell the admins of unexpected ones, once per type per window."""
    error = context.error
    if error is None:
        return
    update_id = update.update_id if isinstance(update, Update) else None
    has_state = "state" in context.application.bot_data
    if is_telegram_hiccup(error):
        # No apology either: to a user who blocked the bot, or under flood control, it would fail the same way.
        log.warning("update %s: Telegram call failed: %s: %s", update_id, type(error).__name__, error)
        if has_state:
            state_of(context).counts["telegram_errors"] += 1
        return
    expected = isinstance(error, recsys.RecsysError)
    log.log(logging.WARNING if expected else logging.ERROR, "update %s failed: %s", update_id, error, exc_info=error)
    if has_state:
        state_of(context).counts["errors"] += 1
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, fmt.friendly_error(error))
    # Only errors inside a handler: outside one (update None) there is no request a user is waiting on.
    if not expected and isinstance(update, Update) and has_state:
        await _alert_admins(context.application, update_id, error)


async def _alert_admins(application: Application, update_id: int | None, error: BaseException) -> None:
    """Tell the admins about an unexpected error, unless one of its type was reported within the window."""
    state = cast(BotState, application.bot_data["state"])
    held_back = state.alerts.admit(f"{type(error).__module__}.{type(error).__qualname__}")
    if held_back is None:
        log.info("admin alert for %s held back (one per %g s)", type(error).__name__, state.alerts.window_s)
        return
    await _notify_admins(
        application, fmt.error_alert_text(update_id, error, suppressed=held_back, window_s=state.alerts.window_s)
    )
