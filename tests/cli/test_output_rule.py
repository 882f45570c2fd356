"""One rule for every command that writes (cifarlab.paths): never over the command's own
input, never into a run, study or search directory another command owns. Each refusal is one
`cifarlab: error:` line naming the path, exit 2, and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cifarlab.cli.main import main


@pytest.fixture
def places(sample_run, tmp_path) -> dict[str, Path]:
    """A real run, a study directory and a search directory (their marker files), by copy."""
    run = tmp_path / "run"
    shutil.copytree(sample_run("seed-baseline"), run, ignore=shutil.ignore_patterns(".lock"))
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"kind": "seeds"}))
    search = tmp_path / "search"
    search.mkdir()
    (search / "tune.json").write_text(json.dumps({"format": "cifarlab-tune"}))
    return {"run": run, "study": study, "search": search}


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("command", "where", "says"),
    [
        (["export", "{run}", "-o", "{run}"], "run", "own input"),
        (["export", "{run}", "-o", "{study}/exported"], "study", "a study directory"),
        (["data", "--data-dir", "sample", "--out", "{run}"], "run", "a run directory"),
        (["train", "--recipe", "seed-baseline", "--out", "{study}/runs/x"], "study", "a study"),
        (["train", "--recipe", "seed-baseline", "--out", "{run}/inner"], "run", "a run directory"),
        (["seeds", "-n", "2", "--out", "{search}/seeds"], "search", "a search directory"),
        (["tune", "--trials", "1", "--out", "{run}/search"], "run", "a run directory"),
        (["evaluate", "{run}", "--out", "{search}"], "search", "a search directory"),
        (["report", "{run}", "-o", "{study}/report.html"], "study", "a study directory"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_no_command_writes_into_what_another_command_owns(
    places, tmp_path, command, where, says, capsys
):
    args = [a.format(**{k: str(v) for k, v in places.items()}) for a in command]
    before = _listing(tmp_path)
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cifarlab: error: ") and says in line
    assert str(places[where]) in line
    assert _listing(tmp_path) == before
