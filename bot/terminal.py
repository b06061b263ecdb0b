"""Chat with the bot in a terminal, no token needed: the real Application and handlers, with the Bot API answered
in-process for the one person at the terminal (PTB's request hook) and updates handed to process_update.

Buttons are shown as numbered choices; type the number to tap one. Works with piped stdin and ends on EOF or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

import recsys
import recsys.demo
from bot.app import build_application, open_store
from bot.service import MusicService
from bot.settings import BotSettings

LOCAL_TOKEN = "1000:terminal-chat-local-token"
PROMPT = "\nyou> "
TICK_S = 1.0  # the first training's elapsed-time line is redrawn this often
USER_ID = 1  # the person at the terminal; made an admin, since it is their machine
BOT_USER = {"id": 1000, "is_bot": True, "first_name": "MusicRec", "username": "musicrec_local_bot"}
YOU = {"id": USER_ID, "is_bot": False, "first_name": "You"}
CHAT = {"id": USER_ID, "type": "private", "first_name": "You"}
# Bot API methods that only configure the bot: nothing to show in a terminal.
_SILENT = frozenset({"setmycommands", "deletemycommands", "deletewebhook", "sendchataction", "close", "logout"})

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


class TerminalChat(BaseRequest):
    """The Bot API as the terminal shows it: messages printed, buttons numbered, taps and texts turned into updates."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.application: Application | None = None
        self._messages: dict[int, dict[str, Any]] = {}  # message_id -> the message as the bot last left it
        self._keyboard: int | None = None  # the message whose buttons the numbers tap
        self._ids = itertools.count(1)
        self.prompting = False  # the "you> " prompt is on screen, waiting for a line

    # ----- BaseRequest: the bot's side -----

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1].lower()
        params = request_data.parameters if request_data is not None else {}
        if name in ("senddocument", "sendphoto") and request_data is not None:
            params = {**params, "files": request_data.multipart_data}
        handle = getattr(self, f"_api_{name}", None)
        if handle is None and name not in _SILENT:
            body = {"ok": False, "error_code": 404, "description": f"Not Found: method {name} is not supported here"}
            return 404, json.dumps(body).encode()
        result = handle(params) if handle is not None else True
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _api_getme(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}

    def _api_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": CHAT, "from": BOT_USER}
        return self._show(message, params, "bot")

    def _api_editmessagetext(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._show(self._messages[int(params["message_id"])], params, "bot (edited)")

    def _api_editmessagereplymarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._messages[int(params["message_id"])]
        before = [label for label, _ in self._buttons(message)]
        after = [label for label, _ in self._buttons({"reply_markup": params.get("reply_markup")})]
        changed = [label for label in after if label not in before]
        if changed:
            self._write(f"\nbot (buttons now): {'  '.join(changed)}\n")
        message.pop("reply_markup", None)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        if self._keyboard == message["message_id"] and not self._buttons(message):
            self._keyboard = None
        return message

    def _api_senddocument(self, params: dict[str, Any]) -> dict[str, Any]:
        """A file for the person: written into the current folder (never over an existing file), path printed."""
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": CHAT, "from": BOT_USER}
        path = self._save(params, "file")
        message["document"] = {"file_id": path.name, "file_unique_id": path.name, "file_name": path.name}
        return message

    def _api_sendphoto(self, params: dict[str, Any]) -> dict[str, Any]:
        """A picture: saved like a file (a terminal shows no images), with its path to open it."""
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": CHAT, "from": BOT_USER}
        path = self._save(params, "picture")
        message["photo"] = [{"file_id": path.name, "file_unique_id": path.name, "width": 1, "height": 1}]
        return message

    def _save(self, params: dict[str, Any], what: str) -> Path:
        path = Path("upload")
        for filename, content, *_ in params["files"].values():
            path = _free_path(Path(Path(str(filename)).name or what))
            path.write_bytes(content if isinstance(content, bytes) else content.read())
            caption = to_plain(str(params.get("caption", "")))
            self._write(f"\nbot ({what}): {caption}\n  saved as {path.resolve()}\n")
        return path

    def _api_answercallbackquery(self, params: dict[str, Any]) -> bool:
        if params.get("text"):
            self._write(f"\nbot (popup): {params['text']}\n")
        return True

    def _show(self, message: dict[str, Any], params: dict[str, Any], who: str) -> dict[str, Any]:
        message["text"] = str(params.get("text", ""))
        message.pop("reply_markup", None)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self._messages[message["message_id"]] = message
        lines = [f"\n{who}: {to_plain(message['text'])}\n"]
        buttons = self._buttons(message)
        if buttons:
            self._keyboard = message["message_id"]
            numbers = iter(range(1, len(buttons) + 1))
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                cells = [f"[{next(numbers)}] {b['text']}" for b in row if "callback_data" in b]
                lines.append("  " + "   ".join(cells) + "\n")
            lines.append("  (type a number to choose)\n")
        elif self._keyboard == message["message_id"]:
            self._keyboard = None
        self._write("".join(lines))
        return message

    @staticmethod
    def _buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row if "callback_data" in b]

    def _write(self, text: str) -> None:
        """Print what the bot sent; when the prompt is showing (a message arriving in the background, such as a
        retrain's report), clear it first and draw it again after."""
        if self.prompting:
            self.out.write("\r\x1b[K")
        self.out.write(text)
        if self.prompting:
            self.out.write(PROMPT)
        self.out.flush()

    # ----- the person's side -----

    async def say(self, line: str) -> None:
        """One typed line: a tap when it is the number of a shown button, otherwise a message; handled to the end."""
        assert self.application is not None
        message = self._messages.get(self._keyboard) if self._keyboard is not None else None
        buttons = self._buttons(message) if message is not None else []
        update_id = next(self._ids)
        if message is not None and line.isdigit() and 1 <= int(line) <= len(buttons):
            data = buttons[int(line) - 1][1]
            query = {"id": str(update_id), "from": YOU, "chat_instance": "1", "data": data, "message": message}
            raw: dict[str, Any] = {"update_id": update_id, "callback_query": query}
        else:
            text: dict[str, Any] = {"message_id": update_id, "date": int(time.time()), "chat": CHAT, "from": YOU}
            text["text"] = line
            if line.startswith("/"):
                length = len(line.split(maxsplit=1)[0].encode("utf-16-le")) // 2  # Telegram counts UTF-16 units
                text["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            raw = {"update_id": update_id, "message": text}
        await self.application.process_update(Update.de_json(raw, self.application.bot))


def _free_path(path: Path) -> Path:
    """The path, or path-1, path-2 … when taken."""
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


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
    first_training = not model_dir.exists() or not any(model_dir.iterdir())
    if first_training:
        how_long = "a few seconds on the demo catalogue" if is_demo else "about half a minute on the full catalogue"
        out.write(f"Training a first model; this takes {how_long}…\n")
    out.flush()
    recsys.ModelDir(model_dir).check_writable()  # before the database is created: a refused start writes nothing
    store = open_store(settings)
    service = MusicService.from_settings(settings, listeners=store, data=data, model_dir=model_dir)
    # The one local user is the admin, and is never rate limited (there is nobody to protect the bot from).
    local = settings.model_copy(
        update={"admin_ids": settings.admin_ids | {USER_ID}, "webhook_url": None, "user_burst": 1_000_000}
    )
    terminal = TerminalChat(out)
    application = build_application(local, service, token=LOCAL_TOKEN, request=terminal, store=store)
    terminal.application = application
    await application.initialize()
    try:
        assert application.post_init is not None
        ticker = asyncio.create_task(_elapsed(out)) if first_training and interactive else None
        try:
            await application.post_init(application)
        finally:
            if ticker is not None:
                ticker.cancel()
                out.write("\n")
        await application.start()
        try:
            out.write(
                "\nMusicRec terminal chat — the same bot as on Telegram. Type a song name, /help, or /quit "
                "(Ctrl-C works too).\n"
            )
            await terminal.say("/start")
            await _converse(terminal, stdin, out, interactive)
            if service.retraining:
                out.write("\nWaiting for the running retrain to finish (Ctrl-C stops it)…\n")
                out.flush()
                while service.retraining:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)  # its report to the admin (you) is sent right after
        finally:
            await application.stop()
    finally:
        await application.shutdown()
    out.write("\nBye!\n")
    out.flush()
    return 0


async def _elapsed(out: TextIO) -> None:
    """A live "training … 12 s" line while the first model trains (its log goes to the file, not here)."""
    started = time.monotonic()
    while True:
        out.write(f"\r  training … {time.monotonic() - started:4.0f} s")
        out.flush()
        await asyncio.sleep(TICK_S)


async def _converse(terminal: TerminalChat, stdin: TextIO, out: TextIO, interactive: bool) -> None:
    lines = _start_reader(stdin, asyncio.get_running_loop())
    while True:
        if interactive:
            out.write(PROMPT)
            out.flush()
        terminal.prompting = interactive
        line = await lines.get()
        terminal.prompting = False
        if line is None:
            return
        text = line.strip()
        if not text:
            continue
        if text.lower() in ("/quit", "/exit", "quit", "exit"):
            return
        if not interactive:
            out.write(f"\nyou> {text}\n")
        await terminal.say(text)
