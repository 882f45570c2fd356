"""report/ reads run and study directories only through their owners: none of its modules
defines a reader of its own under the owners' names.

Which report module may import which is a contract in .importlinter (``report`` and
``report-writers``), checked by ``lint-imports``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cifarlab.report

PACKAGE = Path(cifarlab.report.__file__).parent


def test_report_defines_no_second_reader():
    taken = {"Run", "Study", "RunDir", "StudySpec", "read_study", "read_run", "read_json"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        assert not defined & taken, f"{path.name} defines {defined & taken}"
