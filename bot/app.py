"""The one place that builds the Application: handlers, error handler, rate limits, command menu, retrain job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, cast

from telegram import Bot, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot import handlers, mix_handlers, personal_handlers
from bot.db import RatingStore, StoreError
from bot.formatting import COMMANDS
from bot.handlers import RETRAIN_JOB
from bot.limits import UserRateLimiter
from bot.service import MusicService
from bot.settings import BotSettings
from bot.state import BotState

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PRUNE_JOB = "prune-impressions"
WEBHOOK_PATH = "telegram"  # Telegram posts to <MUSICREC_WEBHOOK_URL>/telegram
ALLOWED_UPDATES = ("message", "callback_query", "inline_query")  # all the handlers use; Telegram sends nothing else
MAX_CONNECT_DELAY_S = 60.0  # the Bot API unreachable at start: retry 1, 2, 4 … s apart, at most this

# Loggers that print Bot API URLs, which carry the token: httpx logs every request at INFO, and PTB's Bot logs
# "Set Bot API URL: ..." at DEBUG. Keep them above those levels whatever the root level is.
_SECRET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram.Bot": logging.INFO,
    "telegram.ext.ExtBot": logging.INFO,
}


class RedactFilter(logging.Filter):
    """Replaces a secret in every record a handler emits, tracebacks included (defence behind the quiet loggers)."""

    def __init__(self, secret: str, placeholder: str = "<token>") -> None:
        super().__init__()
        self.secret = secret
        self.placeholder = placeholder

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secret:
            return True
        message = record.getMessage()
        if self.secret in message:
            record.msg = message.replace(self.secret, self.placeholder)
            record.args = None
        # An exception's text (PTB's InvalidToken quotes the token) is formatted after filters run: format it now,
        # the way the handler's formatter would, and store it where the formatter looks first.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = record.exc_text.replace(self.secret, self.placeholder)
        if record.stack_info:
            record.stack_info = record.stack_info.replace(self.secret, self.placeholder)
        return True


_TRACEBACKS = logging.Formatter()


def configure_logging(
    level: str = "INFO", secret: str | None = None, *, handlers: Sequence[logging.Handler] | None = None
) -> None:
    """Log to stderr (or to `handlers`), keep the token out of every line."""
    root = logging.getLogger()
    if handlers is None:
        logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
        handlers = root.handlers
    else:
        root.setLevel(level.upper())
        for handler in handlers:
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            root.addHandler(handler)
    quiet_secret_loggers()
    if secret:
        for handler in handlers:
            handler.addFilter(RedactFilter(secret))


def redact_in_logs(secret: str, placeholder: str) -> None:
    """Mask one more secret (the webhook's) in everything the root logger's handlers write."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactFilter(secret, placeholder))


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


class MusicApplication(Application):
    """The Application, stopping a running retrain first: PTB's stop() waits for running jobs and tasks, and a
    retrain's would otherwise hold Ctrl-C or SIGTERM for up to the retrain timeout."""

    async def stop(self) -> None:
        state = self.bot_data.get("state")
        if isinstance(state, BotState):
            await state.service.close()
        await super().stop()


def open_store(settings: BotSettings) -> RatingStore | None:
    """The listeners' database, migrated; None (and one error line) when it cannot be opened: the bot then keeps
    recommending and tells people that ratings cannot be saved."""
    try:
        return RatingStore(settings.db_url)
    except StoreError as exc:
        log.error("the listeners' database is unavailable, ratings are off: %s", exc)
        return None


def build_application(
    settings: BotSettings,
    service: MusicService,
    *,
    token: str | None = None,
    request: BaseRequest | None = None,
    store: RatingStore | None = None,
) -> Application:
    """The bot: settings and service in, a ready-to-run Application out.

    With `request`, every Bot API call goes to it instead of over HTTP and there is no updater: the caller hands
    updates to Application.process_update (the terminal chat)."""
    quiet_secret_loggers()
    secret = token or (settings.bot_token.get_secret_value() if settings.bot_token else None)
    if not secret:
        raise ValueError("a bot token is needed: set MUSICREC_BOT_TOKEN (or run without one for the terminal chat)")
    builder = ApplicationBuilder().application_class(MusicApplication)
    if request is not None:
        builder = builder.request(request).get_updates_request(request).updater(None)
    application = (
        builder.token(secret)
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
        store=store,
    )
    application.add_handler(TypeHandler(Update, mix_handlers.note_group_member), group=-2)
    application.add_handler(TypeHandler(Update, handlers.rate_limit_gate), group=-1)
    application.add_handler(CommandHandler("start", handlers.start))
    application.add_handler(CommandHandler("help", handlers.help_command))
    application.add_handler(CommandHandler("recommend", handlers.recommend))
    application.add_handler(CommandHandler("retrain", handlers.retrain))
    application.add_handler(CommandHandler("status", handlers.status))
    for name, callback in (
        ("forme", personal_handlers.forme),
        ("likes", personal_handlers.likes),
        ("history", personal_handlers.history),
        ("forget", personal_handlers.forget),
        ("export", personal_handlers.export),
        ("backup", personal_handlers.backup),
        ("mix", mix_handlers.mix),
        ("groupmix", mix_handlers.groupmix),
        ("mood", mix_handlers.mood),
    ):
        application.add_handler(CommandHandler(name, callback))
    # Plain text is a search only in a private chat; in a group it is people talking to each other.
    application.add_handler(
        MessageHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, handlers.text_message)
    )
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_handler(InlineQueryHandler(mix_handlers.inline_query))
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
    await state.service.warm_up()
    await application.bot.set_my_commands(list(COMMANDS))
    schedule_retraining(application)
    if application.job_queue is not None and state.store is not None:
        # What was shown is kept only as long as /forme ranks it down: a day's slack, pruned daily.
        application.job_queue.run_repeating(
            personal_handlers.prune_impressions, interval=86_400, first=60, name=PRUNE_JOB
        )


async def _post_shutdown(application: Application) -> None:
    """Close the listeners' database (MusicApplication.stop already ended a running retrain and its process)."""
    state = cast(BotState, application.bot_data["state"])
    if state.store is not None:
        state.store.close()
    log.info("bot stopped")


def webhook_options(settings: BotSettings) -> dict[str, Any]:
    """The arguments of run_webhook / Updater.start_webhook for webhook mode, always with a secret token.

    PTB registers the secret with setWebhook and refuses (403) every post without it; with none, anyone who can
    reach the port could post an admin's /retrain. Unset in the settings, a new one is generated for this run.
    """
    if settings.webhook_url is None:
        raise ValueError("webhook mode needs MUSICREC_WEBHOOK_URL")
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value()
    else:
        secret = secrets.token_urlsafe(32)  # 43 characters of A-Z a-z 0-9 _ -, what Telegram allows
        log.info("no MUSICREC_WEBHOOK_SECRET set: generated a webhook secret for this run")
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        "url_path": WEBHOOK_PATH,
        "webhook_url": settings.webhook_url.rstrip("/") + "/" + WEBHOOK_PATH,
        "secret_token": secret,
    }


async def wait_for_bot_api(
    bot: Bot, where: str, *, sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep
) -> None:
    """Initialize `bot` (a getMe call), retrying while the Bot API cannot be reached, one log line per failure.

    `where` is the API's base URL without the token, for the log. A rejected token raises telegram.error.InvalidToken
    at once: no retry can fix it.
    """
    delay = 1.0
    while True:
        try:
            await bot.initialize()
            return
        except NetworkError as exc:  # connection refused, timeouts, 5xx; TimedOut is a NetworkError too
            if isinstance(exc, BadRequest):
                raise
            log.warning("cannot reach the Telegram Bot API at %s: %s; retrying in %g s", where, exc, delay)
        await sleep(delay)
        delay = min(delay * 2, MAX_CONNECT_DELAY_S)


async def reach_bot_api(token: str, base_url: str) -> None:
    """Wait until the Bot API answers with a throwaway client, so run_polling/run_webhook start on a working one."""
    bot = Bot(token, base_url=base_url)
    try:
        await wait_for_bot_api(bot, base_url)
    finally:
        await bot.shutdown()


@contextlib.asynccontextmanager
async def running(
    application: Application, *, poll_timeout: int = 10, webhook: dict[str, Any] | None = None
) -> AsyncIterator[Application]:
    """Run the application inside an `async with` (tests, the terminal chat, the benchmark): polling, or a webhook
    server with `webhook`'s options (see webhook_options)."""
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        assert application.updater is not None
        if webhook is None:
            await application.updater.start_polling(timeout=poll_timeout, allowed_updates=Update.ALL_TYPES)
        else:
            await application.updater.start_webhook(**webhook, allowed_updates=Update.ALL_TYPES)
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
