"""The terminal chat runs the same handlers: buttons become numbers, piped stdin works, EOF ends it cleanly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bot.settings import BotSettings
from bot.terminal import PROMPT, TerminalChat, chat, to_plain

ROOT = Path(__file__).resolve().parents[2]


def _shared_title(csv: Path) -> str:
    """The demo's planted "Home", sung by three comparably likely artists: naming it asks which one."""
    tracks = pd.read_csv(csv, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    assert tracks.loc[tracks["track_name"] == "Home", "track_artist"].nunique() == 3
    return "Home"


def test_to_plain_keeps_links_and_decodes_entities() -> None:
    text = '1. <a href="https://open.spotify.com/track/abc">Rock &amp; Roll</a> — <b>Band</b>\n<i>same artist</i>'
    assert to_plain(text) == "1. Rock & Roll — Band  ↗ https://open.spotify.com/track/abc\nsame artist"


async def test_piped_chat_shows_numbered_buttons_and_taps_by_number(
    workdir: Path, demo_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)  # files and pictures are saved into the current folder
    title = _shared_title(demo_csv)
    settings = BotSettings(
        _env_file=None,  # type: ignore[call-arg]
        data=workdir / "songs.csv",
        model_dir=workdir / "model",
        db_url=f"sqlite:///{workdir / 'listeners.db'}",
    )
    # A candidate (1), 👍 on the first song (1), "why these?" (21, after the 20 rating buttons), "More like this" (22).
    stdin = io.StringIO(f"/recommend\n{title}\n1\n1\n21\n22\n/likes\n")  # not a TTY; ends with EOF
    out = io.StringIO()
    assert await chat(settings, stdin=stdin, stdout=out) == 0
    text = out.getvalue()
    assert "Examples" in text
    assert "[1] " in text and "None of these" in text and "(type a number to choose)" in text
    assert "bot (edited): 🎧 Songs like" in text  # "1" tapped the first candidate
    assert "bot (popup): 👍 Liked" in text and "bot (buttons now): 👍1 ✓" in text  # the second "1" liked song 1
    assert "bot (picture): 📊 How" in text and (workdir / "why-these.png").read_bytes().startswith(b"\x89PNG")
    assert "bot: 🎧 More songs like" in text  # "22" was the answer's "More like this" button
    assert "Your likes (1–1 of 1" in text
    assert text.rstrip().endswith("Bye!")


def test_python_m_bot_without_token_is_the_terminal_chat(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_") and k != "TELEGRAM_BOT_TOKEN"}
    env.update(
        MUSICREC_DATA=str(workdir / "songs.csv"), MUSICREC_MODEL_DIR=str(workdir / "model"), PYTHONPATH=str(ROOT)
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        input="/help\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "/recommend" in result.stdout and "Bye!" in result.stdout
    # Log lines stay out of the chat: they go to a file beside the model.
    assert " INFO " not in result.stdout + result.stderr
    assert "serving model" in (workdir / "terminal.log").read_text()


def test_a_message_arriving_while_the_prompt_shows_redraws_the_prompt() -> None:
    out = io.StringIO()
    terminal = TerminalChat(out)
    terminal.prompting = True  # "you> " is on screen, waiting for a line
    terminal._api_sendmessage({"text": "✅ Retrain done"})
    assert out.getvalue() == "\r\x1b[K\nbot: ✅ Retrain done\n" + PROMPT


def _bot_process(workdir: Path, **env_overrides: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_") and k != "TELEGRAM_BOT_TOKEN"}
    env.update(
        MUSICREC_DATA=str(workdir / "songs.csv"),
        MUSICREC_MODEL_DIR=str(workdir / "model"),
        MUSICREC_DB_URL=f"sqlite:///{workdir / 'listeners.db'}",
        PYTHONPATH=str(ROOT),
    )
    env.update(env_overrides)
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=workdir,
        # A shell that runs the tests in the background starts them with SIGINT ignored, which the child would
        # inherit (and Python then installs no KeyboardInterrupt handler): give the chat a terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_in_the_terminal_chat_ends_it_at_once_without_a_traceback(workdir: Path) -> None:
    process = _bot_process(workdir)
    assert process.stdout is not None
    while "terminal chat" not in (line := process.stdout.readline()):
        assert line, "the chat ended before it started"
    process.send_signal(signal.SIGINT)  # the stdin pipe stays open: the chat was waiting for the next line
    started = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert process.returncode == 130
    assert "Traceback" not in err and "Bye!" in out


def test_the_data_folder_as_model_dir_is_refused_at_start_up(workdir: Path) -> None:
    before = sorted(p.name for p in workdir.iterdir())
    process = _bot_process(workdir, MUSICREC_MODEL_DIR=str(workdir))
    _, err = process.communicate("", timeout=60)
    assert process.returncode == 2
    assert "not a musicrec snapshot" in err and "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing moved, nothing written
