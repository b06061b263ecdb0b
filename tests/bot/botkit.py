"""Constants and builders the bot tests share (a module, not conftest, so tests can import them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_telegram import FakeTelegram
from telegram.ext import Application

from bot.db import RatingStore
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
        "db_url": f"sqlite:///{workdir / 'listeners.db'}",
        "bot_api_base_url": api.base_url,
        "user_burst": 1000,
        "user_requests_per_minute": 6000,
        "retrain_timeout_minutes": 5,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)  # type: ignore[call-arg]


def make_service(settings: BotSettings, store: RatingStore | None = None) -> MusicService:
    """The service as __main__ builds it, with the fast training config."""
    return MusicService.from_settings(settings, listeners=store, train_config=FAST_TRAIN)


# `run_bot(**settings_overrides)` from conftest: an async context manager running the real Application.
BotFactory = Callable[..., contextlib.AbstractAsyncContextManager[Application]]


# ----- `python -m bot` in a subprocess -----

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0  # importing torch and loading the model on a busy 2-core machine


class BotProcess:
    """`python -m bot` in a subprocess, its stdout and stderr collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, workdir: Path, *, token: str, base_url: str, **extra_env: str) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_")}
        env.update(
            PYTHONPATH=str(ROOT),
            MUSICREC_BOT_TOKEN=token,
            MUSICREC_BOT_API_BASE_URL=base_url,
            MUSICREC_DATA=str(workdir / "songs.csv"),
            MUSICREC_MODEL_DIR=str(workdir / "model"),
            MUSICREC_ADMIN_IDS=str(ADMIN),
        )
        env.update(extra_env)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=workdir,  # no developer's .env here
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, text: str, timeout: float = START_TIMEOUT_S) -> str:
        """The first output line containing `text`."""
        async with asyncio.timeout(timeout):
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if self.process.returncode is not None and self._reader.done():
                    raise AssertionError(f"the bot exited ({self.process.returncode}) without {text!r}:\n{self.output}")
                await asyncio.sleep(0.1)

    async def wait_exit(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
