"""Only cifarlab.rundir names a path inside a run directory (its layout's one owner).

Every other module asks :class:`~cifarlab.rundir.RunDir` (or, for an evaluation folder,
:class:`~cifarlab.rundir.EvaluationDir`) for a path: ``run.metrics_path``, never
``run_dir / "metrics.json"`` nor ``run_dir / METRICS``. This scans the source of every module
for the ways around that: a string that names a run's file ("metrics.json",
"evaluation/none/..."); a path built (``/``, ``Path(...)``, ``joinpath``, ``os.path.join``,
``with_name``) from one of rundir's file-name constants or such a string; a second list of
a run's files. The names are
read from RunDir and EvaluationDir themselves, so a new file of a run is covered the day it
gets its property.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cifarlab
from cifarlab import rundir
from cifarlab.rundir import EvaluationDir, RunDir

SRC = Path(cifarlab.__file__).resolve().parent
OWNER = SRC / "rundir.py"
# The studies and tune packages still build the paths of their runs by hand; they move to
# RunDir's methods with the owner of study and search directories (issue 30, point 4).
NOT_YET = ()


def _layout_names() -> tuple[set[str], set[str]]:
    """(file names, folder names) a run directory's layout holds, from RunDir's and
    EvaluationDir's properties and folders."""
    names: set[str] = set()
    for cls, obj in ((RunDir, RunDir("RUN")), (EvaluationDir, EvaluationDir("EVAL"))):
        for attr, value in vars(cls).items():
            if isinstance(value, property) and attr.endswith(("_path", "_dir")):
                names.add(getattr(obj, attr).name)
    run = RunDir("RUN")
    names |= {run.evaluation_dir("none").parent.name, run.export_dir().name}
    files = {n for n in names if "." in n.lstrip(".") or n.startswith(".")}
    return files, names - files


FILES, FOLDERS = _layout_names()
# rundir's constants that hold one of those names: joining one to a path names a run's path.
CONSTANTS = {
    k
    for k, v in vars(rundir).items()
    if k.isupper() and isinstance(v, str) and (v in FILES or v in FOLDERS)
}


# So many of a run's names in one literal make a list of a run's files: RunDir's to keep
# (e.g. RunDir.holds_only_run_files), not a second one elsewhere.
LIST = 4


def _names_a_file(text: str) -> bool:
    return any(text == n or text.endswith("/" + n) or text.startswith(n + "/") for n in FILES)


def _names_a_path(text: str) -> bool:
    """A string that, joined to a path, names a path inside a run."""
    return _names_a_file(text) or any(
        text == n or text.startswith(n + "/") or text.endswith("/" + n) for n in FOLDERS
    )


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _rundir_aliases(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """({local name: rundir constant} from ``from cifarlab.rundir import X as Y``,
    local names bound to the rundir module itself)."""
    constants: dict[str, str] = {}
    modules = {"cifarlab.rundir"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "cifarlab.rundir":
            for a in node.names:
                if a.name in CONSTANTS:
                    constants[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module == "cifarlab":
            modules |= {a.asname or a.name for a in node.names if a.name == "rundir"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == "cifarlab.rundir" and a.asname}
    return constants, modules


def violations(path: Path, root: Path = SRC) -> list[str]:
    """Where the module at ``path`` (in the package at ``root``) names a path inside a run
    itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = _docstrings(tree)
    constants, modules = _rundir_aliases(tree)

    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return ""

    def layout_part(node: ast.AST) -> str | None:
        """The rundir constant or layout string ``node`` is, else None."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return repr(node.value) if _names_a_path(node.value) else None
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.Attribute) and node.attr in CONSTANTS:
            return node.attr if dotted(node.value) in modules else None
        return None

    # A piece of an f-string names a file only after a separator (f"{run}/metrics.json"),
    # not as a suffix glued to a name (f"{worker}.lock").
    pieces = {
        id(v)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for v in node.values[1:]
        if isinstance(v, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or not _names_a_file(node.value):
                continue
            if id(node) not in pieces or not any(node.value == n for n in FILES):
                found.append(f"{where}: the string {node.value!r} names a run's file")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if (part := layout_part(side)) is not None:
                    found.append(f"{where}: a path joined with {part}")
        elif isinstance(node, (ast.Set, ast.List, ast.Tuple)):
            parts = [p for e in node.elts if (p := layout_part(e)) is not None]
            if len(parts) >= LIST:
                found.append(f"{where}: a list of a run's files ({', '.join(parts)})")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            joins = name in {"Path", "PurePath", "os.path.join"} or name.endswith(
                (".joinpath", ".with_name")
            )
            if joins:
                for arg in node.args:
                    if (part := layout_part(arg)) is not None:
                        found.append(f"{where}: {name}(...) with {part}")
    return found


def _modules() -> list[Path]:
    return [
        p
        for p in sorted(SRC.rglob("*.py"))
        if p != OWNER and not str(p.relative_to(SRC)).startswith(NOT_YET)
    ]


def test_the_layout_names_are_found():
    # The scan is only as good as its names: every file and folder of the layout is in them.
    assert {"metrics.json", "checkpoint.pt", "history.json", "recipe.toml"} <= FILES
    assert {"evaluation.json", "corruptions.json", "temperature.json", ".lock"} <= FILES
    assert {"evaluation", "export", "tensorboard"} <= FOLDERS
    assert {"METRICS", "CHECKPOINT", "EVALUATION_DIR", "CORRUPTIONS_JSON"} <= CONSTANTS


@pytest.mark.parametrize(
    "source",
    [
        'x = run_dir / "metrics.json"',
        'x = f"{run_dir}/history.json"',
        'x = f"{run_dir}" "/checkpoint.pt"',
        'x = Path(run_dir, "evaluation", tta, "evaluation.json")',
        "from cifarlab.rundir import METRICS\nx = run_dir / METRICS",
        "from cifarlab.rundir import EVALUATION_DIR as E\nx = Path(run, E)",
        "from cifarlab import rundir\nx = out.joinpath(rundir.CHECKPOINT)",
        'x = os.path.join(run, "evaluation")',
        "from cifarlab import rundir\n"
        "names = {rundir.RECIPE, rundir.CHECKPOINT, rundir.METRICS, rundir.LOCK}",
    ],
)
def test_the_scan_sees_a_path_named_by_hand(source, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert violations(probe, tmp_path)


def test_no_module_but_rundir_names_a_path_inside_a_run():
    found = [v for p in _modules() for v in violations(p)]
    assert not found, "use RunDir's (or EvaluationDir's) paths:\n" + "\n".join(found)
