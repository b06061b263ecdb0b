"""The dependency direction: recsys never imports the bot or Telegram; the bot never reaches into recsys internals."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_recsys_knows_nothing_of_the_bot() -> None:
    for path, names in _imports("recsys").items():
        assert not {n for n in names if n.split(".")[0] in ("bot", "telegram")}, path


def test_bot_uses_only_the_public_recsys_api() -> None:
    allowed = {"recsys", "recsys.data", "recsys.demo"}  # file_fingerprint and the demo catalogue are public
    for path, names in _imports("bot").items():
        assert {n for n in names if n.split(".")[0] == "recsys"} <= allowed, path
