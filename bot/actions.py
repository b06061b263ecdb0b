"""What a button means: short, self-contained callback data (<= 64 bytes), so buttons survive a restart."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CALLBACK_BYTES = 64
PAGE_SIZE = 10
MAX_PAGES = 5  # "more like this" stops after 50 songs: deeper ranks are noise
MAX_OFFSET = (MAX_PAGES - 1) * PAGE_SIZE  # the last page's offset; a button asking for more is forged
FOR_ME = "f"  # the `source` of a rating given under a /forme answer (otherwise the answer's seed track_id)
MOOD = "d"  # ... and under a /mood answer


@dataclass(frozen=True)
class Pick:
    """A candidate chosen from the "which one?" buttons (or a song of /history)."""

    track_id: str


@dataclass(frozen=True)
class More:
    """The next page of songs like `track_id`."""

    track_id: str
    offset: int


@dataclass(frozen=True)
class NoneOfThese:
    """None of the candidates was the song."""


@dataclass(frozen=True)
class AdminRetrain:
    """The "retrain now" button under /status."""


@dataclass(frozen=True)
class Why:
    """The "why these?" picture of the page of songs like `track_id` starting at `offset`."""

    track_id: str
    offset: int


@dataclass(frozen=True)
class Rate:
    """👍 (+1) or 👎 (-1) on a listed song; `source` is the answer it was listed in (seed track_id or FOR_ME)."""

    track_id: str
    value: int
    source: str


@dataclass(frozen=True)
class Unlike:
    """Remove a like from the /likes page at `offset`."""

    track_id: str
    offset: int


@dataclass(frozen=True)
class LikesPage:
    """A page of /likes."""

    offset: int


@dataclass(frozen=True)
class ForMe:
    """Ten songs for me (the /forme answer, again)."""


@dataclass(frozen=True)
class Forget:
    """The answer to /forget's question: delete everything about me, or not."""

    confirmed: bool


Action = Pick | More | NoneOfThese | AdminRetrain | Why | Rate | Unlike | LikesPage | ForMe | Forget


def is_page(offset: int) -> bool:
    """Whether a "more like this" offset is one the bot offers; any other would rank up to the whole catalogue."""
    return 0 <= offset <= MAX_OFFSET and offset % PAGE_SIZE == 0


def encode(action: Action) -> str:
    """Callback data for an action; raises ValueError if Telegram would reject it (over 64 bytes)."""
    match action:
        case Pick(track_id):
            data = f"p:{track_id}"
        case More(track_id, offset):
            data = f"m:{track_id}:{offset}"
        case Why(track_id, offset):
            data = f"w:{track_id}:{offset}"
        case NoneOfThese():
            data = "n"
        case AdminRetrain():
            data = "a:retrain"
        case Rate(track_id, value, source):
            data = f"r:{'+' if value > 0 else '-'}:{track_id}:{source}"
        case Unlike(track_id, offset):
            data = f"u:{track_id}:{offset}"
        case LikesPage(offset):
            data = f"k:{offset}"
        case ForMe():
            data = "f"
        case Forget(confirmed):
            data = f"x:{'yes' if confirmed else 'no'}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data for {action!r} is {len(data.encode())} bytes; Telegram allows 64")
    return data


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def decode(data: str | None) -> Action | None:
    """The action a button carries, or None for data this version does not understand (an expired button)."""
    if not data:
        return None
    kind, _, rest = data.partition(":")
    simple: dict[str, Action] = {"n": NoneOfThese(), "a:retrain": AdminRetrain(), "f": ForMe()}
    if data in simple:
        return simple[data]
    if kind == "p" and rest:
        return Pick(rest)
    if kind == "m" and rest:
        track_id, _, offset = rest.rpartition(":")
        number = _number(offset)
        return More(track_id, number) if track_id and number is not None and is_page(number) else None
    if kind == "w" and rest:
        track_id, _, offset = rest.rpartition(":")
        number = _number(offset)
        return Why(track_id, number) if track_id and number is not None and is_page(number) else None
    if kind == "r":
        sign, _, rated = rest.partition(":")
        track_id, _, source = rated.partition(":")
        return Rate(track_id, 1 if sign == "+" else -1, source) if sign in "+-" and sign and track_id else None
    if kind == "u":
        track_id, _, offset = rest.rpartition(":")
        number = _number(offset)
        return Unlike(track_id, number) if track_id and number is not None else None
    if kind == "k":
        number = _number(rest)
        return LikesPage(number) if number is not None else None
    if kind == "x" and rest in ("yes", "no"):
        return Forget(rest == "yes")
    return None
