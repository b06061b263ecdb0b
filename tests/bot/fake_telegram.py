"""The fake Telegram Bot API for the bot's tests: fake_bot_api's server plus conveniences for asserting."""

from __future__ import annotations

from fake_bot_api import MAX_CALLBACK_DATA_BYTES, MAX_TEXT_LENGTH, ApiError, BotCall, ChatMessage, LocalBotAPI

__all__ = ["MAX_CALLBACK_DATA_BYTES", "MAX_TEXT_LENGTH", "ApiError", "BotCall", "ChatMessage", "FakeTelegram"]


class FakeTelegram(LocalBotAPI):
    """LocalBotAPI with one-line "user does X, bot answers Y" helpers."""

    # Error descriptions a test expects the bot to provoke (and handle); the no_violations fixture skips them.
    tolerated: tuple[str, ...] = ()

    async def ask(self, user_id: int, text: str, *, timeout: float = 15.0) -> ChatMessage:
        """A user sends `text`; returns the bot's next message (or edit) in that chat."""
        since = self.mark()
        await self.send_text(user_id, text)
        return self.message_of(await self.wait_reply(user_id, since=since, timeout=timeout))

    async def press(
        self, message: ChatMessage, data: str, *, user_id: int | None = None, force: bool = False, timeout: float = 15.0
    ) -> tuple[str, BotCall]:
        """A user taps a button; returns the callback_query_id and the bot's next message or edit in that chat."""
        since = self.mark()
        query_id = await self.tap(message, data, user_id=user_id, force=force)
        reply = await self.wait_reply(message.chat_id, since=since, timeout=timeout)
        return query_id, reply

    def texts_to(self, chat_id: int, *, since: int = 0) -> list[str]:
        """Every text the bot successfully sent or edited into this chat, in order."""
        return [
            c.text
            for c in self.calls[since:]
            if c.ok and c.chat_id == chat_id and c.method in ("sendMessage", "editMessageText")
        ]

    def callbacks_text(self, query_id: str) -> str:
        """The pop-up text the bot answered a callback query with ("" for none)."""
        call = next(
            c for c in self.calls if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
        )
        return str(call.params.get("text", ""))
