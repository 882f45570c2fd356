"""A module in src/ over about 450 lines is one concern and says so in its opening docstring
(docs/ARCHITECTURE.md, "Files"): a long file that does not is several files waiting to be split."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cifarlab"
LIMIT = 450


def long_files_without_a_stated_concern(root: Path = SRC) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "one concern" not in doc.lower():
            out.append(f"{path.relative_to(root)} ({text.count(chr(10))} lines)")
    return out


def test_every_long_module_names_its_one_concern():
    assert long_files_without_a_stated_concern() == []


def test_the_check_finds_a_long_module_that_names_none(tmp_path):
    (tmp_path / "big.py").write_text('"""Many things."""\n' + "x = 1\n" * (LIMIT + 1))
    (tmp_path / "small.py").write_text('"""Many things."""\nx = 1\n')
    (tmp_path / "said.py").write_text('"""One concern: x."""\n' + "x = 1\n" * (LIMIT + 1))
    assert long_files_without_a_stated_concern(tmp_path) == [f"big.py ({LIMIT + 2} lines)"]
