"""Constants and builders the bot tests share (a module, not conftest, so tests can import them)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_telegram import FakeTelegram
from telegram.ext import Application

from bot.service import MusicService
from bot.settings import BotSettings
from recsys.config import TrainConfig

TOKEN = "123456789:AAH-test-secret-token-do-not-log-xyz"
ADMIN = 1001
USER = 2002
OTHER_USER = 3003
# Small enough that a retrain in a test takes seconds, not the real training's minute.
FAST_TRAIN = TrainConfig(epochs=4, eval_every=2, patience=2, progress=False)


def make_settings(api: FakeTelegram, workdir: Path, **overrides: Any) -> BotSettings:
    """Settings pointing at the fake server and this test's files; generous rate limits unless overridden."""
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "admin_ids": frozenset({ADMIN}),
        "data": workdir / "songs.csv",
        "model_dir": workdir / "model",
        "bot_api_base_url": api.base_url,
        "user_burst": 1000,
        "user_requests_per_minute": 6000,
        "retrain_timeout_minutes": 5,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)  # type: ignore[call-arg]


def make_service(settings: BotSettings) -> MusicService:
    """The service as __main__ builds it, with the fast training config."""
    return MusicService(
        settings.data,
        settings.model_dir,
        train_config=FAST_TRAIN,
        min_metrics=settings.retrain_min_metrics,
        retrain_timeout_s=settings.retrain_timeout_minutes * 60,
    )


# `run_bot(**settings_overrides)` from conftest: an async context manager running the real Application.
BotFactory = Callable[..., contextlib.AbstractAsyncContextManager[Application]]
