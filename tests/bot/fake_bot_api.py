"""A Telegram Bot API server on 127.0.0.1 that enforces Telegram's limits: the fake Telegram of the bot's tests and
of bench/bench_bot.py, reached through python-telegram-bot's real HTTP stack.

Only the methods this bot calls are implemented; anything else answers 404 like an unknown method does.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Self

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096  # characters of a message text
MAX_CALLBACK_DATA_BYTES = 64  # bytes of a button's callback_data
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_INLINE_RESULTS = 50  # results of one answerInlineQuery
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # a photo upload  # characters of an answerCallbackQuery text
ALLOWED_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
        "tg-emoji",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Parameters that are plain strings on the wire; everything else is JSON-encoded by the client.
_STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "action",
        "callback_query_id",
        "url",
        "inline_message_id",
        "secret_token",
        "caption",
        "document",
    }
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description and, for 429, retry_after."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.scripted = False  # True for errors injected with script_error, not rule violations

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends with this error."""
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class BotCall:
    """One request the bot made, with when it arrived and how it was answered."""

    method: str
    params: dict[str, Any]
    at: float  # time.perf_counter() on arrival
    error: ApiError | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else None

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))


@dataclass
class ChatMessage:
    """A message the bot sent, as it currently stands after edits."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    parse_mode: str | None
    edits: int = 0
    reply_to: int | None = None  # the message this one answers (reply_parameters), as Telegram shows a reply

    def buttons(self) -> list[tuple[str, str]]:
        """(text, callback_data) of every callback button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row if "callback_data" in b]


@dataclass
class _ScriptedError:
    method: str
    error: ApiError
    times: int
    chat_id: int | None = None  # only calls to this chat; None: any call of the method


class _HtmlChecker(HTMLParser):
    """Rejects what Telegram's HTML parse mode rejects: unknown tags, unbalanced tags, bare <, > and &."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problem: str | None = None
        self.visible = 0

    def _fail(self, why: str) -> None:
        if self.problem is None:
            self.problem = why

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_HTML_TAGS:
            self._fail(f'unsupported start tag "{tag}"')
        if tag == "a" and not dict(attrs).get("href"):
            self._fail("a tag without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self._fail(f'unexpected end tag "{tag}"')
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if any(c in data for c in "<>&"):
            self._fail("unescaped <, > or & in text")
        self.visible += len(data)

    def handle_entityref(self, name: str) -> None:
        if name not in {"lt", "gt", "amp", "quot"}:
            self._fail(f"unsupported entity &{name};")
        self.visible += 1

    def handle_charref(self, name: str) -> None:
        self.visible += 1


def check_html(text: str) -> None:
    """Raise ApiError 400 the way Telegram does when an HTML-formatted text does not parse."""
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.stack:
        checker._fail(f'can\'t find end tag corresponding to start tag "{checker.stack[-1]}"')
    if checker.problem:
        raise ApiError(400, f"Bad Request: can't parse entities: {checker.problem}")


def _check_text(text: Any, parse_mode: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    # Stricter than Telegram (which counts the text after parsing): markup counts too, so a text that passes
    # here passes there.
    if len(text) > MAX_TEXT_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
        check_html(text)
    return text


def _check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup["inline_keyboard"]:
        for button in row:
            if not str(button.get("text", "")).strip():
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode("utf-8"))
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _chat(chat_id: int) -> dict[str, Any]:
    """A chat as the Bot API describes it: negative ids are groups, as in Telegram."""
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Test group"}
    return {"id": chat_id, "type": "private", "first_name": "Tester"}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart/form-data body (how the Bot API receives files): its text fields and its files by part name."""
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, payload)
        else:
            fields[name] = payload.decode("utf-8")
    return fields, files


def _decode_params(raw: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _STRING_PARAMS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


class LocalBotAPI:
    """A fake Telegram: users send messages and tap buttons here; the bot polls and answers over real HTTP."""

    def __init__(self, token: str, *, bot_id: int = 4242, username: str = "musicrec_local_bot", port: int = 0) -> None:
        self.token = token
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": "MusicRec", "username": username}
        self.calls: list[BotCall] = []
        self.messages: dict[tuple[int, int], ChatMessage] = {}
        self.documents: list[tuple[int, str, bytes]] = []  # (chat_id, filename, content) of every sendDocument
        self.photos: list[tuple[int, str, bytes]] = []  # (chat_id, filename, content) of every sendPhoto
        self.inline_answers: dict[str, dict[str, Any] | None] = {}  # inline query id -> its answer (None: none yet)
        self.commands: list[dict[str, str]] = []
        self.update_sent_at: dict[int, float] = {}  # update_id -> perf_counter when it was queued
        self.listeners: list[Callable[[BotCall], None]] = []
        self.webhook: dict[str, Any] | None = None  # what setWebhook registered (url, secret_token, ...)
        self.unauthorized: list[str] = []  # methods called with a wrong token, answered 401 and not in `calls`
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(1)
        self._callbacks: dict[str, bool] = {}  # callback_query_id -> answered
        self._scripted: list[_ScriptedError] = []
        self._changed = asyncio.Condition()
        self._poll_generation = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = port  # 0: a random free port, known after start()

    # ----- lifecycle -----

    @property
    def base_url(self) -> str:
        """What to pass to ApplicationBuilder.base_url (the token is appended by the client)."""
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> LocalBotAPI:
        """Listen on 127.0.0.1, on the port given or a random free one."""
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- the user's side -----

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _user(self, user_id: int, first_name: str) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}

    async def _push(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update["update_id"] = update_id
        self.update_sent_at[update_id] = time.perf_counter()
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return update_id

    async def send_text(self, user_id: int, text: str, *, first_name: str = "Tester") -> int:
        """A user writes `text` to the bot in their private chat; returns the update_id."""
        message: dict[str, Any] = {
            "message_id": self._next_message_id(user_id),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": self._user(user_id, first_name),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            # Telegram counts entity offsets in UTF-16 code units.
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}
            ]
        return await self._push({"message": message})

    async def tap(self, message: ChatMessage, data: str, *, user_id: int | None = None, force: bool = False) -> str:
        """A user taps the button carrying `data` under a bot message; returns the callback_query_id.

        `force` taps data the message does not (or no longer) show, like a stale client would.
        """
        current = self.messages[(message.chat_id, message.message_id)]
        if not force and data not in [d for _, d in current.buttons()]:
            raise AssertionError(
                f"no button with data {data!r} under message {message.message_id}: {current.buttons()}"
            )
        user = user_id if user_id is not None else message.chat_id
        query_id = str(next(self._callback_ids))
        self._callbacks[query_id] = False
        await self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user, "Tester"),
                    "chat_instance": str(message.chat_id),
                    "data": data,
                    "message": {
                        "message_id": current.message_id,
                        "date": int(time.time()),
                        "chat": _chat(current.chat_id),
                        "from": self.bot_user,
                        "text": current.text,
                        **({"reply_markup": current.reply_markup} if current.reply_markup else {}),
                    },
                }
            }
        )
        return query_id

    async def send_inline_query(self, user_id: int, query: str) -> str:
        """A user types "@bot <query>" in some chat; returns the inline query id."""
        query_id = f"iq{next(self._callback_ids)}"
        self.inline_answers[query_id] = None
        update = {"inline_query": {"id": query_id, "from": self._user(user_id, "Tester"), "query": query, "offset": ""}}
        await self._push(update)
        return query_id

    async def choose_inline(self, user_id: int, chat_id: int, query_id: str, result_id: str) -> ChatMessage:
        """The user picks an inline result: Telegram posts its message into the chat, sent by the user via the bot."""
        answer = self.inline_answers.get(query_id)
        if answer is None:
            raise AssertionError(f"inline query {query_id} was not answered")
        result = next(r for r in answer["results"] if r["id"] == result_id)
        content = result["input_message_content"]
        message = ChatMessage(
            chat_id,
            self._next_message_id(chat_id),
            content["message_text"],
            result.get("reply_markup"),
            content.get("parse_mode"),
        )
        self.messages[(chat_id, message.message_id)] = message
        return message

    async def send_group_text(self, chat_id: int, user_id: int, text: str) -> int:
        """A user writes `text` in a group chat (privacy mode on: the bot only gets commands); the update_id."""
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": self._user(user_id, f"Member {user_id}"),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}
            ]
        return await self._push({"message": message})

    def script_error(
        self,
        method: str,
        code: int = 429,
        *,
        retry_after: int | None = 1,
        times: int = 1,
        chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (to `chat_id` only, if given) with an error (429 with
        retry_after by default; e.g. 403 "Forbidden: bot was blocked by the user" for a user who blocked the bot)."""
        if description is None:
            description = f"Too Many Requests: retry after {retry_after}" if code == 429 else f"Scripted error {code}"
        error = ApiError(code, description, retry_after if code == 429 else None)
        error.scripted = True
        self._scripted.append(_ScriptedError(method.lower(), error, times, chat_id))

    def callback_answered(self, query_id: str) -> bool:
        """Whether the bot has answered this callback query."""
        return self._callbacks.get(query_id, False)

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot's getUpdates offset."""
        return len(self._updates)

    # ----- waiting for the bot -----

    def violations(self, *, allow: tuple[str, ...] = ()) -> list[BotCall]:
        """Calls Telegram would have refused (scripted errors, and descriptions containing an `allow` entry,
        excluded): each one is a bug in the bot."""
        return [
            c
            for c in self.calls
            if c.error is not None and not c.error.scripted and not any(a in c.error.description for a in allow)
        ]

    def mark(self) -> int:
        """A position in `calls`; pass it as `since` to wait only for later calls."""
        return len(self.calls)

    async def wait_for(self, predicate: Callable[[BotCall], bool], *, since: int = 0, timeout: float = 10.0) -> BotCall:
        """The first call at or after `since` that satisfies `predicate` (successful or not)."""

        def find() -> BotCall | None:
            return next((c for c in self.calls[since:] if predicate(c)), None)

        async with asyncio.timeout(timeout):
            async with self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found

    async def wait_reply(
        self,
        chat_id: int,
        *,
        since: int,
        timeout: float = 10.0,
        methods: tuple[str, ...] = ("sendMessage", "editMessageText"),
    ) -> BotCall:
        """The bot's next successful message or edit in this chat after `since`."""
        return await self.wait_for(
            lambda c: c.method in methods and c.ok and c.chat_id == chat_id, since=since, timeout=timeout
        )

    def message_of(self, call: BotCall) -> ChatMessage:
        """The chat message a successful sendMessage/editMessageText call created or changed."""
        result = call.result
        assert isinstance(result, dict), f"{call.method} has no message result"
        return self.messages[(result["chat"]["id"], result["message_id"])]

    # ----- the bot's side -----

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        key = method.lower()
        for scripted in self._scripted:
            chat_matches = scripted.chat_id is None or params.get("chat_id") == scripted.chat_id
            if scripted.method == key and scripted.times > 0 and chat_matches:
                scripted.times -= 1
                raise scripted.error
        handler = self._methods().get(key)
        if handler is None:
            raise ApiError(404, "Not Found")
        if key == "getupdates":
            return await self._get_updates(params)
        return handler(params)

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "getme": lambda p: self.bot_user,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._webhook_info,
            "getupdates": lambda p: None,  # async; handled in _dispatch
            "sendmessage": self._send_message,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "answerinlinequery": self._answer_inline_query,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_reply_markup,
            "answercallbackquery": self._answer_callback,
            "setmycommands": self._set_my_commands,
            "getmycommands": lambda p: self.commands,
            "deletemycommands": self._delete_my_commands,
            "sendchataction": self._send_chat_action,
            "close": lambda p: True,
            "logout": lambda p: True,
        }

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url")
        if not url:  # Telegram treats an empty url as deleteWebhook
            self.webhook = None
            return True
        if not str(url).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = dict(params)
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        url = self.webhook["url"] if self.webhook else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        self._poll_generation += 1
        generation = self._poll_generation
        async with self._changed:
            # The offset confirms (and so removes) everything before it, as in Telegram.
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._changed.notify_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while not self._updates and generation == self._poll_generation:
                        await self._changed.wait()
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request")
            return self._updates[:limit]

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        text = _check_text(params.get("text"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        message = ChatMessage(chat_id, self._next_message_id(chat_id), text, markup, params.get("parse_mode"))
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
            message.reply_to = reply["message_id"]
        self.messages[(chat_id, message.message_id)] = message
        return self._message_json(message)

    def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        files = params.get("files") or {}
        # The file is uploaded as the multipart part "document", or as another part that "document" names.
        part = str(params.get("document", "document")).removeprefix("attach://")
        if part not in files:
            raise ApiError(400, "Bad Request: there is no document in the request")
        filename, content = files[part]
        if not content:
            raise ApiError(400, "Bad Request: file must be non-empty")
        caption = _check_text(params.get("caption") or ".", params.get("parse_mode"))
        message = ChatMessage(chat_id, self._next_message_id(chat_id), caption, None, params.get("parse_mode"))
        self.messages[(chat_id, message.message_id)] = message
        self.documents.append((chat_id, filename, content))
        body = self._message_json(message)
        body["document"] = {"file_id": filename, "file_unique_id": filename, "file_name": filename}
        return body

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        files = params.get("files") or {}
        part = str(params.get("photo", "photo")).removeprefix("attach://")
        if part not in files:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        filename, content = files[part]
        image = content.startswith(b"\x89PNG") or content.startswith(b"\xff\xd8")  # PNG or JPEG
        if len(content) > MAX_PHOTO_BYTES or not image:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        caption = _check_text(params.get("caption") or ".", params.get("parse_mode"))
        message = ChatMessage(chat_id, self._next_message_id(chat_id), caption, None, params.get("parse_mode"))
        self.messages[(chat_id, message.message_id)] = message
        self.photos.append((chat_id, filename, content))
        body = self._message_json(message)
        body["photo"] = [{"file_id": filename, "file_unique_id": filename, "width": 1, "height": 1}]
        return body

    def _answer_inline_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("inline_query_id", ""))
        if query_id not in self.inline_answers or self.inline_answers[query_id] is not None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        results = params.get("results")
        if not isinstance(results, list) or len(results) > MAX_INLINE_RESULTS:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        ids = [str(r.get("id", "")) for r in results]
        if len(set(ids)) != len(ids) or any(not 1 <= len(i.encode()) <= MAX_CALLBACK_DATA_BYTES for i in ids):
            raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
        for result in results:
            if not str(result.get("title", "")).strip():
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            content = result.get("input_message_content") or {}
            _check_text(content.get("message_text"), content.get("parse_mode"))
            _check_markup(result.get("reply_markup"))
        self.inline_answers[query_id] = dict(params)
        return True

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_message(params)
        text = _check_text(params.get("text"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        if text == message.text and markup == message.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message",
            )
        message.text, message.reply_markup, message.parse_mode = text, markup, params.get("parse_mode")
        message.edits += 1
        return self._message_json(message)

    def _edit_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find_message(params)
        markup = _check_markup(params.get("reply_markup"))
        if markup == message.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message.reply_markup = markup
        message.edits += 1
        return self._message_json(message)

    def _find_message(self, params: dict[str, Any]) -> ChatMessage:
        key = (params.get("chat_id"), params.get("message_id"))
        message = self.messages.get(key)  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if self._callbacks.get(query_id) is not False:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER_LENGTH:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callbacks[query_id] = True
        return True

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not _COMMAND_RE.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = commands
        return True

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _message_json(self, message: ChatMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": _chat(message.chat_id),
            "from": self.bot_user,
            "text": message.text,
        }
        if message.reply_markup:
            body["reply_markup"] = message.reply_markup
        return body

    # ----- HTTP -----

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = await self._handle_http(request_line, headers, body)
                data = json.dumps(payload).encode("utf-8")
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n".encode("latin-1")
                    + data
                )
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _handle_http(self, request_line: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        try:
            _verb, target, _version = request_line.split(" ", 2)
        except ValueError:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request"}
        url = urllib.parse.urlsplit(target)
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", url.path)
        if match is None:
            return 404, ApiError(404, "Not Found").payload()
        token, method = match.groups()
        if token != self.token:
            self.unauthorized.append(method)
            return 401, ApiError(401, "Unauthorized").payload()
        raw = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        content_type = headers.get("content-type", "")
        if body and content_type.startswith("application/json"):
            params: dict[str, Any] = {**_decode_params(raw), **json.loads(body)}
        elif content_type.startswith("multipart/form-data"):
            fields, files = _multipart(content_type, body)
            params = {**_decode_params({**raw, **fields}), "files": files}
        else:
            raw.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            params = _decode_params(raw)
        call = BotCall(method=method, params=params, at=time.perf_counter())
        try:
            call.result = await self._dispatch(method, params)
        except ApiError as exc:
            call.error = exc
        if method.lower() != "getupdates" or call.result:
            await self._record(call)
        if call.error is not None:
            return call.error.code, call.error.payload()
        return 200, {"ok": True, "result": call.result}

    async def _record(self, call: BotCall) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        for listener in self.listeners:
            try:
                listener(call)
            except Exception:
                log.exception("local Bot API listener failed")
