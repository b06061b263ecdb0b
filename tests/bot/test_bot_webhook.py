"""Webhook mode: only Telegram, which knows the secret registered with setWebhook, can post updates."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botkit import ADMIN, make_settings
from fake_telegram import FakeTelegram

from bot import formatting as fmt
from bot.app import build_application, running, webhook_options
from bot.service import MusicService, RetrainOutcome

pytestmark = pytest.mark.usefixtures("no_violations")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CONFIGURED_SECRET = "configured_Secret-42"


class _CountingRetrains(MusicService):
    """Counts retrains started instead of training: the test is about who may start one."""

    started = 0

    def start_retrain(self, *, only_if_changed: bool) -> asyncio.Task[RetrainOutcome]:
        self.started += 1

        async def unchanged() -> RetrainOutcome:
            return RetrainOutcome("unchanged", self.info, self.info.version)

        return asyncio.create_task(unchanged())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _retrain_update(update_id: int) -> dict[str, Any]:
    """What Telegram would post when the admin sends /retrain."""
    admin = {"id": ADMIN, "is_bot": False, "first_name": "Admin"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": ADMIN, "type": "private", "first_name": "Admin"},
            "from": admin,
            "text": "/retrain",
            "entities": [{"type": "bot_command", "offset": 0, "length": len("/retrain")}],
        },
    }


@pytest.mark.parametrize("configured", [CONFIGURED_SECRET, None], ids=["configured-secret", "generated-secret"])
async def test_forged_updates_are_refused_and_telegrams_are_answered(
    telegram: FakeTelegram, workdir: Path, caplog: pytest.LogCaptureFixture, configured: str | None
) -> None:
    caplog.set_level("INFO")
    settings = make_settings(
        telegram,
        workdir,
        webhook_url="https://bot.example.org/hooks/",
        webhook_port=_free_port(),
        webhook_secret=configured,
    )
    service = _CountingRetrains(settings.data, settings.model_dir)
    options = webhook_options(settings)
    assert options["webhook_url"] == "https://bot.example.org/hooks/telegram"
    url = f"http://127.0.0.1:{settings.webhook_port}/{options['url_path']}"
    async with running(build_application(settings, service), webhook=options), httpx.AsyncClient() as client:
        assert telegram.webhook is not None and telegram.webhook["url"] == options["webhook_url"]
        secret = telegram.webhook.get("secret_token")
        assert isinstance(secret, str) and re.fullmatch(r"[A-Za-z0-9_-]{32,256}|" + CONFIGURED_SECRET, secret)
        if configured is not None:
            assert secret == configured

        since = telegram.mark()
        for headers in ({}, {SECRET_HEADER: "guessed"}, {SECRET_HEADER: secret + "x"}):
            forged = await client.post(url, json=_retrain_update(1), headers=headers)
            assert forged.status_code == 403
        await asyncio.sleep(0.3)
        assert not [c for c in telegram.calls[since:] if c.method == "sendMessage"]
        assert service.started == 0

        real = await client.post(url, json=_retrain_update(2), headers={SECRET_HEADER: secret})
        assert real.status_code == 200
        reply = await telegram.wait_reply(ADMIN, since=since)
        assert reply.text == fmt.RETRAIN_STARTED and service.started == 1
    if configured is None:
        assert any("generated" in r.getMessage() for r in caplog.records)
    assert secret not in caplog.text


def test_each_run_generates_its_own_secret(telegram: FakeTelegram, workdir: Path) -> None:
    settings = make_settings(telegram, workdir, webhook_url="https://bot.example.org")
    first, second = webhook_options(settings), webhook_options(settings)
    assert first["secret_token"] and second["secret_token"] and first["secret_token"] != second["secret_token"]
    assert first["listen"] == "127.0.0.1" and first["port"] == 8443 and first["url_path"] == "telegram"
