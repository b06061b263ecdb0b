"""Shared fixtures: a demo catalogue and a model trained on it once per session, a fake Telegram, a running bot."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import FAST_TRAIN, TOKEN, BotFactory, make_service, make_settings
from fake_telegram import FakeTelegram
from telegram.ext import Application

import recsys
import recsys.demo
from bot.app import build_application, open_store, running
from bot.service import MusicService


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's MUSICREC_* variables and .env must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("MUSICREC_") or name == "TELEGRAM_BOT_TOKEN":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic demo catalogue, written once."""
    return recsys.demo.write_demo_csv(tmp_path_factory.mktemp("data") / "songs.csv", seed=0)


@pytest.fixture(scope="session")
def trained_dir(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot trained once per session on the demo catalogue; tests copy it, never change it."""
    directory = tmp_path_factory.mktemp("trained") / "model"
    recsys.train(demo_csv, config=FAST_TRAIN).save(directory)
    return directory


@pytest.fixture(scope="session")
def snapshot(trained_dir: Path) -> recsys.Snapshot:
    """The session snapshot, for choosing queries with a known answer."""
    return recsys.load(trained_dir)


@pytest.fixture
def workdir(tmp_path: Path, demo_csv: Path, trained_dir: Path) -> Path:
    """This test's own copy of the data and the saved model."""
    shutil.copy(demo_csv, tmp_path / "songs.csv")
    shutil.copytree(trained_dir, tmp_path / "model")
    return tmp_path


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API server on 127.0.0.1, random port."""
    async with FakeTelegram(TOKEN) as api:
        yield api


@pytest.fixture
def run_bot(telegram: FakeTelegram, workdir: Path) -> BotFactory:
    """`async with run_bot(**settings_overrides) as app:` runs the real Application, polling the fake server."""

    @contextlib.asynccontextmanager
    async def factory(service: MusicService | None = None, **overrides: Any) -> AsyncIterator[Application]:
        settings = make_settings(telegram, workdir, **overrides)
        store = open_store(settings)
        application = build_application(settings, service or make_service(settings, store), store=store)
        async with running(application, poll_timeout=1):
            yield application

    return factory


@pytest.fixture
def no_violations(telegram: FakeTelegram) -> Iterator[None]:
    """Fail the test if the bot made any call that real Telegram would refuse."""
    yield
    bad = [(c.method, c.error.description if c.error else "") for c in telegram.violations(allow=telegram.tolerated)]
    assert not bad, f"calls Telegram would refuse: {bad}"
