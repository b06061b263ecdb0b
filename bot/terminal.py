"""Chat with the bot in a terminal, no token needed: the real Application and handlers run against LocalBotAPI.

Buttons are shown as numbered choices; type the number to tap one. Works with piped stdin and ends on EOF.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import recsys.demo
from bot.app import build_application, running
from bot.localapi import BotCall, ChatMessage, LocalBotAPI
from bot.service import MusicService
from bot.settings import BotSettings

LOCAL_TOKEN = "1000:terminal-chat-local-token"
USER_ID = 1  # the person at the terminal; made an admin, since it is their machine
SETTLE_S = 0.3  # the bot has finished answering when it has been quiet this long
FIRST_REPLY_TIMEOUT_S = 120.0

_ANCHOR = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def to_plain(text: str) -> str:
    """Telegram HTML to terminal text: tags dropped, entities decoded, a line's link shown at its end."""
    lines = []
    for line in text.split("\n"):
        urls = [html.unescape(url) for url, _ in _ANCHOR.findall(line)]
        line = html.unescape(_TAG.sub("", _ANCHOR.sub(r"\2", line)))
        lines.append(line + "".join(f"  ↗ {url}" for url in urls))
    return "\n".join(lines)


def resolve_data(settings: BotSettings) -> tuple[Path, Path, bool]:
    """(csv, model dir, is_demo): the configured data if present, else the embedded demo catalogue."""
    if settings.data.exists():
        return settings.data, settings.model_dir, False
    demo = recsys.demo.DEMO_PATH
    if not demo.exists():
        demo = settings.model_dir.parent / "demo_songs.csv"
        if not demo.exists():
            recsys.demo.write_demo_csv(demo)
    # A separate model directory, so the demo model never stands in for a real one.
    return demo, settings.model_dir.parent / "demo", True


class TerminalChat:
    """Prints what the bot sends to the terminal user and turns typed lines into messages or taps."""

    def __init__(self, api: LocalBotAPI, out: TextIO) -> None:
        self.api = api
        self.out = out
        self.keyboard: ChatMessage | None = None
        api.listeners.append(self._on_call)

    def _on_call(self, call: BotCall) -> None:
        if not call.ok or (call.chat_id != USER_ID and call.method != "answerCallbackQuery"):
            return
        if call.method in ("sendMessage", "editMessageText"):
            message = self.api.message_of(call)
            prefix = "bot (edited)" if call.method == "editMessageText" else "bot"
            self.out.write(f"\n{prefix}: {to_plain(message.text)}\n")
            buttons = message.buttons()
            if buttons:
                self.keyboard = message
                for number, (label, _) in enumerate(buttons, start=1):
                    self.out.write(f"  [{number}] {label}\n")
                self.out.write("  (type a number to choose)\n")
            elif self.keyboard is not None and self.keyboard.message_id == message.message_id:
                self.keyboard = None
            self.out.flush()
        elif call.method == "answerCallbackQuery" and call.params.get("text"):
            self.out.write(f"\nbot (popup): {call.params['text']}\n")
            self.out.flush()

    async def say(self, line: str) -> None:
        """Send one typed line, as a button tap when it is the number of a shown button; wait for the answer."""
        since = self.api.mark()
        current = self.api.messages.get((self.keyboard.chat_id, self.keyboard.message_id)) if self.keyboard else None
        buttons = current.buttons() if current else []
        if current is not None and line.isdigit() and 1 <= int(line) <= len(buttons):
            await self.api.tap(current, buttons[int(line) - 1][1], user_id=USER_ID)
        else:
            await self.api.send_text(USER_ID, line, first_name="You")
        await self._settle(since)

    async def _settle(self, since: int) -> None:
        try:
            await self.api.wait_for(
                lambda c: c.chat_id == USER_ID or c.method == "answerCallbackQuery",
                since=since,
                timeout=FIRST_REPLY_TIMEOUT_S,
            )
        except TimeoutError:
            self.out.write("\n(no answer from the bot)\n")
            return
        while True:
            last = self.api.calls[-1].at if self.api.calls else 0.0
            await asyncio.sleep(SETTLE_S)
            if (self.api.calls[-1].at if self.api.calls else 0.0) == last and time.perf_counter() - last >= SETTLE_S:
                return


def _start_reader(stream: TextIO, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Read lines in a daemon thread (a blocking read must not hold up the bot, nor the exit)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="terminal-stdin", daemon=True).start()
    return queue


async def chat(settings: BotSettings, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the terminal chat until EOF or /quit; returns the exit code."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    data, model_dir, is_demo = resolve_data(settings)
    interactive = stdin.isatty()
    if is_demo:
        out.write(f"No data at {settings.data}; using the demo catalogue {data} (synthetic songs).\n")
    if not any(model_dir.glob("*")):
        how_long = "a few seconds on the demo catalogue" if is_demo else "about a minute on the full catalogue"
        out.write(f"Training a first model; this takes {how_long}…\n")
    out.flush()
    service = MusicService(
        data,
        model_dir,
        min_metrics=settings.retrain_min_metrics,
        retrain_timeout_s=settings.retrain_timeout_minutes * 60,
        train_config=settings.train_config(),
    )
    async with LocalBotAPI(LOCAL_TOKEN) as api:
        local = settings.model_copy(
            update={"bot_api_base_url": api.base_url, "admin_ids": settings.admin_ids | {USER_ID}, "webhook_url": None}
        )
        application = build_application(local, service, token=LOCAL_TOKEN)
        terminal = TerminalChat(api, out)
        async with running(application, poll_timeout=1):
            out.write("\nMusicRec terminal chat — the same bot as on Telegram. Type a song name, /help, or /quit.\n")
            out.flush()
            await terminal.say("/start")
            lines = _start_reader(stdin, asyncio.get_running_loop())
            while True:
                if interactive:
                    out.write("\nyou> ")
                    out.flush()
                line = await lines.get()
                if line is None:
                    break
                text = line.strip()
                if not text:
                    continue
                if text.lower() in ("/quit", "/exit", "quit", "exit"):
                    break
                if not interactive:
                    out.write(f"\nyou> {text}\n")
                await terminal.say(text)
            if service.retraining:
                out.write("\nWaiting for the running retrain to finish…\n")
                out.flush()
                while service.retraining:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(SETTLE_S * 2)
    out.write("\nBye!\n")
    out.flush()
    return 0
