"""`python -m bot`: the Telegram bot when a token is set, otherwise the terminal chat on the same handlers."""

from __future__ import annotations

import os

# Before numpy loads: a multi-threaded BLAS spins its threads against the event loop on a small machine, which
# made one 28k x 64 similarity 25x slower (12 ms instead of 0.5 ms). The training process sets its own threads.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from bot.settings import BotSettings  # noqa: E402

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load the settings, run the bot or the terminal chat."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("--terminal", action="store_true", help="chat in the terminal even if a token is set")
    args = parser.parse_args(argv)
    try:
        settings = BotSettings()
    except ValueError as exc:  # pydantic's ValidationError names the variable and the problem
        print(f"invalid bot settings:\n{exc}", file=sys.stderr)
        return 2

    from telegram.error import InvalidToken

    import recsys
    from bot.app import (
        ALLOWED_UPDATES,
        build_application,
        configure_logging,
        open_store,
        reach_bot_api,
        redact_in_logs,
        webhook_options,
    )
    from bot.service import MusicService

    # The modules just imported (torch's, numpy's, telegram's ~350k objects) live as long as the process: leave them
    # out of every later garbage collection, each full one of which walked them all (~170 ms: a pause for every chat
    # the event loop serves; bench/bench_scale_serving.py). Before any model loads, so a model swapped out is freed.
    gc.freeze()
    token = settings.bot_token.get_secret_value() if settings.bot_token else None
    if token is None or args.terminal:
        from bot.terminal import chat

        # The chat owns the terminal: log lines (the retraining process's too) go to a file beside the model.
        log_file = settings.model_dir.with_name("terminal.log")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        configure_logging("INFO", token, handlers=[logging.FileHandler(log_file, encoding="utf-8")])
        try:
            return asyncio.run(chat(settings))
        except KeyboardInterrupt:  # Ctrl-C: asyncio.run cancelled the chat, which stopped a running retrain
            print("\nBye!")
            return 130
        except recsys.RecsysError as exc:
            print(f"python -m bot: error: {exc}", file=sys.stderr)
            return 2

    configure_logging(settings.log_level, token)
    try:
        # Before waiting for Telegram: a model directory a save would refuse (say, the data folder) is a setting error.
        recsys.ModelDir(settings.model_dir).check_writable()
    except recsys.SnapshotError as exc:
        log.error("MUSICREC_MODEL_DIR: %s", exc)
        return 2
    try:
        asyncio.run(reach_bot_api(token, settings.bot_api_base_url))
    except InvalidToken:  # PTB's message quotes the token: say it in our own words
        log.error(
            "the Telegram Bot API at %s rejected the bot token (401/404): check MUSICREC_BOT_TOKEN, and "
            "MUSICREC_BOT_API_BASE_URL if you changed it",
            settings.bot_api_base_url,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    store = open_store(settings)
    service = MusicService.from_settings(settings, listeners=store)
    service.prestart_pictures()
    application = build_application(settings, service, store=store)
    try:
        if settings.webhook_url:
            options = webhook_options(settings)
            redact_in_logs(options["secret_token"], "<webhook secret>")
            log.info("starting in webhook mode on %s:%s", settings.webhook_listen, settings.webhook_port)
            application.run_webhook(**options, allowed_updates=list(ALLOWED_UPDATES))
        else:
            log.info("starting in polling mode")
            application.run_polling(allowed_updates=list(ALLOWED_UPDATES))
    except recsys.RecsysError as exc:  # the first model could not be trained or loaded: the reason, in one line
        log.error("the bot cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
