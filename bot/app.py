"""The one place that builds the Application: handlers, error handler, rate limits, command menu, retrain job."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import handlers
from bot.formatting import COMMANDS
from bot.handlers import RETRAIN_JOB, BotState, UserRateLimiter
from bot.service import MusicService
from bot.settings import BotSettings

log = logging.getLogger(__name__)

# Loggers that print Bot API URLs, which carry the token: httpx logs every request at INFO, and PTB's Bot logs
# "Set Bot API URL: ..." at DEBUG. Keep them above those levels whatever the root level is.
_SECRET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram.Bot": logging.INFO,
    "telegram.ext.ExtBot": logging.INFO,
}


class RedactFilter(logging.Filter):
    """Replaces a secret in every record a handler emits (defence in depth behind the quiet loggers)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret and self.secret in record.getMessage():
            record.msg = record.getMessage().replace(self.secret, "<token>")
            record.args = None
        return True


def configure_logging(level: str = "INFO", secret: str | None = None) -> None:
    """Log to stderr, keep the token out of every line."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_secret_loggers()
    if secret:
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactFilter(secret))


def quiet_secret_loggers() -> None:
    """httpx logs every request URL at INFO, and the URL contains the bot token."""
    for name, level in _SECRET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level < level:  # NOTSET (0) inherits the root level, which may be DEBUG
            logger.setLevel(level)


class FloodControl(AIORateLimiter):
    """Telegram's per-bot message limits with 429 retries; "typing…" is not a message and skips the queue.

    Without the exception, a busy bot's typing indicators would eat the message budget and slow answers further.
    """

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if endpoint == "sendChatAction":
            return await callback(*args, **kwargs)
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)


def build_application(settings: BotSettings, service: MusicService, *, token: str | None = None) -> Application:
    """The bot: settings and service in, a ready-to-run Application out."""
    quiet_secret_loggers()
    secret = token or (settings.bot_token.get_secret_value() if settings.bot_token else None)
    if not secret:
        raise ValueError("a bot token is needed: set MUSICREC_BOT_TOKEN (or run without one for the terminal chat)")
    application = (
        ApplicationBuilder()
        .token(secret)
        .base_url(settings.bot_api_base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .rate_limiter(
            FloodControl(
                overall_max_rate=settings.global_messages_per_second,
                overall_time_period=1,
                max_retries=settings.flood_max_retries,
            )
        )
        .concurrent_updates(settings.concurrent_updates)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data["state"] = BotState(
        settings=settings,
        service=service,
        limiter=UserRateLimiter(settings.user_burst, settings.user_requests_per_minute),
    )
    application.add_handler(TypeHandler(Update, handlers.rate_limit_gate), group=-1)
    application.add_handler(CommandHandler("start", handlers.start))
    application.add_handler(CommandHandler("help", handlers.help_command))
    application.add_handler(CommandHandler("recommend", handlers.recommend))
    application.add_handler(CommandHandler("retrain", handlers.retrain))
    application.add_handler(CommandHandler("status", handlers.status))
    # Plain text is a search only in a private chat; in a group it is people talking to each other.
    application.add_handler(
        MessageHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, handlers.text_message)
    )
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_error_handler(handlers.error_handler)
    return application


def schedule_retraining(application: Application) -> None:
    """(Re-)register the retrain job from the settings; the scheduler is in memory, so every start-up does this."""
    state = cast(BotState, application.bot_data["state"])
    settings = state.settings
    job_queue = application.job_queue
    if job_queue is None:  # pragma: no cover - the job-queue extra is a dependency
        raise RuntimeError("scheduled retraining needs python-telegram-bot[job-queue]")
    for job in job_queue.get_jobs_by_name(RETRAIN_JOB):
        job.schedule_removal()
    job_kwargs: dict[str, Any] = {
        # A run is never started twice at once, runs missed while busy or down collapse into one, and a run up
        # to an hour late still happens (APScheduler logs a skipped one instead of dropping it silently).
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": 3600,
    }
    if settings.retrain_interval_minutes is not None:
        seconds = settings.retrain_interval_minutes * 60
        job_queue.run_repeating(
            handlers.scheduled_retrain, interval=seconds, first=seconds, name=RETRAIN_JOB, job_kwargs=job_kwargs
        )
        log.info("retraining scheduled every %g minutes when the data changes", settings.retrain_interval_minutes)
    elif settings.retrain_cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(settings.retrain_cron)
        job_queue.run_custom(
            handlers.scheduled_retrain, job_kwargs={"trigger": trigger, **job_kwargs}, name=RETRAIN_JOB
        )
        log.info("retraining scheduled by cron '%s' when the data changes", settings.retrain_cron)


async def _post_init(application: Application) -> None:
    """Load the model, publish the command menu, register the retrain schedule."""
    state = cast(BotState, application.bot_data["state"])
    if not state.service.ready:
        await state.service.start()
    await application.bot.set_my_commands(list(COMMANDS))
    schedule_retraining(application)


async def _post_shutdown(application: Application) -> None:
    """Nothing to close: a running retrain's process is waited for by its own task."""
    log.info("bot stopped")


@contextlib.asynccontextmanager
async def running(application: Application, *, poll_timeout: int = 10) -> AsyncIterator[Application]:
    """Run the application with polling inside an `async with` (tests, the terminal chat, the benchmark)."""
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        assert application.updater is not None
        await application.updater.start_polling(timeout=poll_timeout, allowed_updates=Update.ALL_TYPES)
        await application.start()
        try:
            yield application
        finally:
            if application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
