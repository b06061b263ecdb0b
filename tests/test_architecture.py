"""Import direction: recsys never imports telegram or bot; bot reaches recsys only through its public package."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_recsys_knows_nothing_of_telegram() -> None:
    modules = imported_modules("recsys")
    assert modules, "recsys has no modules?"
    for path, names in modules.items():
        bad = {n for n in names if n.split(".")[0] in {"telegram", "bot", "apscheduler"}}
        assert not bad, f"{path} imports {bad}"


def test_bot_uses_only_the_public_recsys_package() -> None:
    for path, names in imported_modules("bot").items():
        private = {n for n in names if n.startswith("recsys.") and n not in {"recsys.data", "recsys.demo"}}
        assert not private, f"{path} reaches into {private}; use the names re-exported by recsys"
