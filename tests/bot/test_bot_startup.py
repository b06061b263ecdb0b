"""Start-up: the token stays out of every log line, and an unreachable Bot API or a wrong token is one clear line."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from botkit import START_TIMEOUT_S, TOKEN, USER, BotProcess
from fake_telegram import FakeTelegram
from telegram import Bot
from telegram.error import InvalidToken, NetworkError

from bot.app import MAX_CONNECT_DELAY_S, configure_logging, wait_for_bot_api


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging with the token, its output going to a StringIO as it goes to stderr in __main__."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("INFO", TOKEN, handlers=[handler])
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_the_token_is_masked_in_messages_and_tracebacks(log_stream: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)
    try:
        raise RuntimeError(f"request to /bot{TOKEN}/sendMessage failed")
    except RuntimeError:
        log.exception("update 7 failed")
    output = log_stream.getvalue()
    assert "update 7 failed" in output and "Traceback" in output, output
    assert "https://api.telegram.org/bot<token>/getMe" in output
    assert "RuntimeError: request to /bot<token>/sendMessage failed" in output
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_httpx_does_not_log_request_urls(log_stream: io.StringIO, level: str) -> None:
    logging.getLogger().setLevel(level)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True, "result": {}}))
    with httpx.Client(transport=transport) as client:
        client.get(f"https://api.telegram.org/bot{TOKEN}/getMe")
    logging.getLogger("bot.test").info("a line that must get through")
    output = log_stream.getvalue()
    assert "a line that must get through" in output
    assert "getMe" not in output and "HTTP Request" not in output


class _FlakyBot:
    """Answers getMe (initialize) only after `failures` connection errors, or rejects the token."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def initialize(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.calls <= self.failures:
            raise NetworkError("httpx.ConnectError: All connection attempts failed")


async def test_retries_back_off_doubling_up_to_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    bot = _FlakyBot(failures=9)
    await wait_for_bot_api(cast(Bot, bot), "http://api.example/bot", sleep=sleep)
    assert bot.calls == 10
    assert slept == [1, 2, 4, 8, 16, 32, MAX_CONNECT_DELAY_S, MAX_CONNECT_DELAY_S, MAX_CONNECT_DELAY_S]
    assert MAX_CONNECT_DELAY_S == 60
    lines = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(lines) == 9 and lines[0].endswith("retrying in 1 s") and "http://api.example/bot" in lines[0]

    rejected = _FlakyBot(failures=0, error=InvalidToken("Unauthorized"))
    with pytest.raises(InvalidToken):
        await wait_for_bot_api(cast(Bot, rejected), "http://api.example/bot", sleep=sleep)
    assert rejected.calls == 1


# ----- python -m bot against a Bot API that is down, then up; and one that refuses the token -----


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_bot_api_is_one_line_and_retried_until_it_answers(workdir: Path) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/bot"
    bot = await BotProcess.start(workdir, token=TOKEN, base_url=base_url)
    try:
        line = await bot.wait_line("cannot reach")
        assert f"cannot reach the Telegram Bot API at {base_url}:" in line and "retrying in 1 s" in line
        async with FakeTelegram(TOKEN, port=port) as telegram:
            await telegram.wait_for(lambda c: c.method == "setMyCommands", timeout=START_TIMEOUT_S)
            greeting = await telegram.ask(USER, "/start", timeout=30)
            assert "/recommend" in greeting.text
            bot.process.terminate()  # what systemd or docker stop sends; PTB stops cleanly on it
            assert await bot.wait_exit(timeout=60) == 0
    finally:
        await bot.kill()
    assert "Traceback" not in bot.output, bot.output
    assert TOKEN not in bot.output and TOKEN.split(":")[1] not in bot.output


async def test_a_rejected_token_exits_with_code_2_in_one_line(telegram: FakeTelegram, workdir: Path) -> None:
    wrong = "987654321:AAwrong-token-that-must-not-be-printed"
    bot = await BotProcess.start(workdir, token=wrong, base_url=telegram.base_url)
    try:
        assert await bot.wait_exit(timeout=START_TIMEOUT_S) == 2
    finally:
        await bot.kill()
    assert telegram.unauthorized == ["getMe"] and not telegram.calls  # nothing retried, nothing else tried
    assert "Traceback" not in bot.output, bot.output
    assert wrong not in bot.output and wrong.split(":")[1] not in bot.output
    problems = [line for line in bot.lines if "token" in line.lower()]
    assert len(problems) == 1 and "rejected" in problems[0], bot.output


def test_what_start_up_imports_is_frozen_out_of_garbage_collection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio
    import gc
    from collections.abc import Coroutine
    from typing import Any

    from bot import __main__ as entry

    # torch, numpy and telegram leave ~350k objects that live as long as the process; every full collection walked
    # them all (~170 ms here), a pause for every chat the event loop serves.
    def no_chat(coro: Coroutine[Any, Any, Any]) -> int:
        coro.close()
        return 0

    monkeypatch.delenv("MUSICREC_BOT_TOKEN", raising=False)
    monkeypatch.setenv("MUSICREC_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setattr(asyncio, "run", no_chat)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    gc.unfreeze()
    try:
        assert entry.main(["--terminal"]) == 0
        assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
