"""The error handler: Telegram's refusals are logged, not escalated; unexpected errors reach the admins, rarely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from botkit import ADMIN, USER, BotFactory
from fake_telegram import FakeTelegram
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut

from bot import formatting as fmt
from bot.handlers import is_telegram_hiccup
from bot.limits import ALERT_WINDOW_S, AlertThrottle
from bot.service import MusicService, Resolution

pytestmark = pytest.mark.usefixtures("no_violations")

BLOCKED = "Forbidden: bot was blocked by the user"


async def _logged(
    caplog: pytest.LogCaptureFixture, match: Callable[[str], bool], timeout: float = 15
) -> logging.LogRecord:
    """The first record of bot.handlers whose message matches, waiting for it to be logged."""
    async with asyncio.timeout(timeout):
        while True:
            found = [r for r in caplog.records if r.name == "bot.handlers" and match(r.getMessage())]
            if found:
                return found[0]
            await asyncio.sleep(0.05)


async def _no_admin_message(telegram: FakeTelegram, since: int, wait: float) -> None:
    with pytest.raises(TimeoutError):
        call = await telegram.wait_for(lambda c: c.chat_id == ADMIN, since=since, timeout=wait)
        pytest.fail(f"the admins were told: {call.text}")


async def test_a_user_who_blocked_the_bot_is_logged_not_escalated_nor_apologised_to(
    telegram: FakeTelegram, run_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.script_error("sendMessage", 403, chat_id=USER, times=100, description=BLOCKED)
    async with run_bot():
        since = telegram.mark()
        update_id = await telegram.send_text(USER, "/start")
        record = await _logged(caplog, lambda m: f"update {update_id}" in m)
        await _no_admin_message(telegram, since, wait=2)
        assert [c.error.description if c.error else "sent" for c in telegram.calls[since:] if c.chat_id == USER] == [
            BLOCKED  # the greeting, and no apology after it
        ]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert BLOCKED in record.getMessage() and "\n" not in record.getMessage()


async def test_429s_that_outlast_the_retries_are_not_escalated(
    telegram: FakeTelegram, run_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.script_error("sendMessage", 429, retry_after=1, chat_id=USER, times=100)
    async with run_bot(flood_max_retries=1):
        since = telegram.mark()
        update_id = await telegram.send_text(USER, "/start")
        record = await _logged(caplog, lambda m: f"update {update_id}" in m)
        await _no_admin_message(telegram, since, wait=4)
        assert sum(c.chat_id == USER for c in telegram.calls[since:]) == 2  # the first try and one retry
    assert record.levelno == logging.WARNING and record.exc_info is None


class _BrokenService(MusicService):
    async def resolve(self, text: str) -> Resolution:
        raise RuntimeError("search index exploded")


async def test_a_storm_of_unexpected_errors_sends_one_admin_alert(
    telegram: FakeTelegram, run_bot: BotFactory, workdir: Path
) -> None:
    service = _BrokenService(workdir / "songs.csv", workdir / "model")
    async with run_bot(service=service):
        since = telegram.mark()
        for i in range(20):
            await telegram.send_text(USER, f"/recommend song {i}")
        async with asyncio.timeout(30):  # every request is still answered with the apology
            while telegram.texts_to(USER, since=since).count(fmt.APOLOGY) < 20:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        alerts = [c for c in telegram.calls[since:] if c.chat_id == ADMIN and c.method == "sendMessage"]
        assert len(alerts) == 1, [c.text for c in alerts]
        assert "RuntimeError" in alerts[0].text and "search index exploded" in alerts[0].text


def test_alerts_are_one_per_error_type_per_window_and_count_what_was_held_back() -> None:
    throttle = AlertThrottle(window_s=ALERT_WINDOW_S)
    assert ALERT_WINDOW_S >= 60
    assert throttle.admit("RuntimeError", now=0.0) == 0
    assert all(throttle.admit("RuntimeError", now=t) is None for t in range(1, 20))
    assert throttle.admit("KeyError", now=5.0) == 0  # another type has its own window
    assert throttle.admit("RuntimeError", now=ALERT_WINDOW_S - 1) is None
    assert throttle.admit("RuntimeError", now=ALERT_WINDOW_S + 1) == 20  # the 19 above and the one just before
    assert throttle.admit("RuntimeError", now=ALERT_WINDOW_S + 2) is None

    text = fmt.error_alert_text(7, RuntimeError("boom <b>"), suppressed=20, window_s=ALERT_WINDOW_S)
    assert "RuntimeError: boom &lt;b&gt;" in text and "20" in text and "10 min" in text
    assert "suppressed" not in fmt.error_alert_text(7, RuntimeError("boom"), suppressed=0, window_s=ALERT_WINDOW_S)


@pytest.mark.parametrize(
    ("error", "hiccup"),
    [
        (Forbidden(BLOCKED), True),
        (RetryAfter(3), True),
        (TimedOut(), True),
        (NetworkError("httpx.ConnectError: All connection attempts failed"), True),
        (BadRequest("Message is not modified: specified new message content ..."), True),
        (BadRequest("Query is too old and response timeout expired or query id is invalid"), True),
        # The bot's own mistakes: worth an alert.
        (BadRequest("Can't parse entities: unsupported start tag"), False),
        (Conflict("terminated by other getUpdates request"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_which_errors_are_telegram_hiccups(error: Exception, hiccup: bool) -> None:
    assert is_telegram_hiccup(error) is hiccup
