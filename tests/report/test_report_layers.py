"""report/ imports point one way, at module level, and its names do not shadow the readers'.

document, formatting, charts, inputs <- each section and the writers (html, markdown), which
import none of each other <- sections. An import inside a function to dodge a cycle is a
cycle, so none is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cifarlab.report

PACKAGE = Path(cifarlab.report.__file__).parent
# What each module of report/ may import from report/ ("" is the package: ReportError).
SECTIONS = {
    "data_section",
    "model_section",
    "training_section",
    "calibration_section",
    "corruptions_section",
    "improvements_section",
    "seeds_section",
    "comparison_section",
    "tune_section",
}
ALLOWED = {
    "__init__": set(),
    "document": set(),
    "formatting": set(),
    "inputs": {""},
    "charts": set(),
    "html": {"", "document"},
    "markdown": {"", "document"},
    "data_section": {"document", "formatting", "inputs"},
    "model_section": {"document", "formatting", "inputs"},
    "training_section": {"document", "formatting", "inputs"},
    "calibration_section": {"", "document", "inputs"},
    "corruptions_section": {"", "document", "inputs"},
    "improvements_section": {"document", "formatting", "inputs", "charts"},
    "seeds_section": {"document", "formatting", "inputs", "charts"},
    "comparison_section": {"document", "formatting", "inputs", "charts"},
    "tune_section": {"", "document"},
    "sections": {"", "document", "formatting", "inputs", "html", "markdown", *SECTIONS},
}


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module imported, at module level?) for every import in ``tree``."""
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, id(node) in top))
    return out


def test_report_modules_import_one_way_at_module_level():
    modules = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.glob("*.py")}
    assert set(modules) == set(ALLOWED), "a new module in report/: add it to ALLOWED"
    for name, tree in modules.items():
        for module, top_level in _imports(tree):
            if not module.startswith("cifarlab"):
                continue
            assert top_level, f"report/{name}.py imports {module} inside a function"
            if module == "cifarlab.report" or module.startswith("cifarlab.report."):
                inner = module.removeprefix("cifarlab.report").removeprefix(".")
                assert inner in ALLOWED[name], f"report/{name}.py must not import {module}"


def test_report_defines_no_second_reader():
    taken = {"Run", "Study", "RunDir", "StudySpec", "read_study", "read_run", "read_json"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        assert not defined & taken, f"{path.name} defines {defined & taken}"
