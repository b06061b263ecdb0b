"""What every handler shares: BotState (in application.bot_data["state"]), the one admin check, the one edit."""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import cast

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import formatting as fmt
from bot.db import RatingStore
from bot.limits import AlertThrottle, UserRateLimiter
from bot.service import MusicService
from bot.settings import BotSettings

log = logging.getLogger(__name__)


@dataclass
class BotState:
    """What every handler shares; lives in application.bot_data["state"]."""

    settings: BotSettings
    service: MusicService
    limiter: UserRateLimiter
    started_at: float = field(default_factory=time.monotonic)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    alerts: AlertThrottle = field(default_factory=AlertThrottle)
    # People's ratings and history; None when the database failed to open (recommendations still work).
    store: RatingStore | None = None
    # (group chat, person) pairs already recorded this run, so a busy group costs no write per message.
    group_members_seen: set[tuple[int, int]] = field(default_factory=set)


def state_of(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    """The shared state of the running application."""
    return cast(BotState, context.application.bot_data["state"])


async def require_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Refuse (politely, and logged) anyone who is not an admin."""
    user = update.effective_user
    if state_of(context).settings.is_admin(user.id if user else None):
        return True
    command = update.effective_message.text if update.effective_message else "a button"
    log.warning("refused admin action %r from user %s", command, user.id if user else None)
    state_of(context).counts["refused_admin"] += 1
    if update.callback_query is None and update.effective_message is not None:
        await update.effective_message.reply_text(fmt.NOT_ADMIN)
    return False


async def edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the message under a button; a second tap producing the same text is not an error."""
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            raise
