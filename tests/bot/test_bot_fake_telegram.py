"""The fake Telegram refuses what Telegram refuses, so the end-to-end tests can trust a successful call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from botkit import TOKEN
from fake_telegram import FakeTelegram
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=telegram.base_url) as client:
        yield client


async def test_limits(telegram: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(1, "x" * 4097)
    await bot.send_message(1, "x" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]])
        await bot.send_message(1, "hi", reply_markup=too_long)
    with pytest.raises(BadRequest, match="empty"):
        await bot.send_message(1, " ")
    with pytest.raises(BadRequest, match="parse entities"):
        await bot.send_message(1, "<b>unclosed", parse_mode="HTML")


async def test_edit_that_changes_nothing_is_refused(telegram: FakeTelegram, bot: Bot) -> None:
    message = await bot.send_message(1, "same")
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("same", chat_id=1, message_id=message.message_id)
    await bot.edit_message_text("changed", chat_id=1, message_id=message.message_id)
    with pytest.raises(BadRequest, match="not found"):
        await bot.edit_message_text("x", chat_id=1, message_id=999)


async def test_a_callback_can_be_answered_once(telegram: FakeTelegram, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d")]])
    message = await bot.send_message(1, "tap", reply_markup=markup)
    query_id = await telegram.tap(telegram.messages[(1, message.message_id)], "d")
    await bot.answer_callback_query(query_id)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)


async def test_scripted_429_carries_retry_after(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.script_error("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(1, "x")
    retry_after = caught.value.retry_after  # int or timedelta, depending on PTB's deprecation setting
    assert (retry_after if isinstance(retry_after, int) else retry_after.total_seconds()) == 7
    await bot.send_message(1, "x")  # only once


async def test_get_updates_long_polls_and_honours_offsets(telegram: FakeTelegram, bot: Bot) -> None:
    assert await bot.get_updates(timeout=0) == ()
    first = await telegram.send_text(5, "/start")
    await telegram.send_text(5, "hello")
    updates = await bot.get_updates(timeout=1)
    assert [u.update_id for u in updates] == [first, first + 1]
    first_message = updates[0].message
    assert first_message is not None and first_message.text == "/start"
    assert first_message.entities[0].type == "bot_command"
    assert [u.update_id for u in await bot.get_updates(offset=first + 1, timeout=0)] == [first + 1]
    assert await bot.get_updates(offset=first + 2, timeout=0) == ()
    assert telegram.pending_updates() == 0


async def test_wrong_token_and_concurrent_polls(telegram: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=telegram.base_url):
            pass

    async with Bot(TOKEN, base_url=telegram.base_url) as a, Bot(TOKEN, base_url=telegram.base_url) as b:
        first = asyncio.create_task(a.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(b.get_updates(timeout=0))
        with pytest.raises(Conflict):
            await first
        assert await second == ()
