"""Tune storages as users write them, and a resume asked to change a finished run (issue 29),
counted like every other fault.

- `cifarlab tune --storage`: postgresql:// and mysql:// URLs without a driver name, in-memory
  SQLite (a search no second worker and no rerun could find), and starts that fail (no server,
  no database named) in a new folder and in a search that exists: one line, the password
  never shown, and nothing created, removed or changed.
- `cifarlab train --resume` of a finished run: a longer train.epochs without --allow-change, a
  shorter one, a change of the same length (nothing to train) are refused in one line with
  every file of the run unchanged; a longer one allowed ends exactly where a run that long
  from the start ends.

Each case runs the real CLI in a forked child (relhelpers.run_cli: the same `main()` as
`python -m cifarlab`), so no setting of a run leaks into the test process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from relhelpers import RECIPE_ARGS, run_cli, weights

STORAGE = "tune_storage"  # rows of docs/RELIABILITY.md (relhelpers.CATEGORIES)
FINISHED = "resume_finished"
PREFIX = "cifarlab: error: "
SECRET = "s3cret"

SPACE = """description = "lr of seed-baseline, for tests"
"optim.lr" = { log_uniform = [1e-4, 3e-3] }
"""


def copy_run(src: Path, dest: Path) -> Path:
    return Path(shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lock")))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(PREFIX)]


# --------------------------------------------------------------------------- tune storage


def no_server(where: Path, scheme: str = "postgresql") -> str:
    """A URL whose server is nowhere: a unix socket in a folder that does not exist."""
    return f"{scheme}://cifarlab:{SECRET}@/tune?host={where / 'no-server'}&port=1"


def tune_argv(tmp_path: Path, out: Path, storage: str | None) -> list[str]:
    space = tmp_path / "space.toml"
    if not space.exists():
        space.write_text(SPACE, encoding="utf-8")
    argv = ["tune", "--recipe", "seed-baseline", "--space", str(space), "--pruner", "none"]
    argv += ["--set", "train.epochs=0.2", "--set", "system.threads=1", "--trials", "0"]
    argv += ["--data-dir", "sample", "--out", str(out)]
    return argv + (["--storage", storage] if storage else [])


STORAGES = [
    ("mysql:// without a driver, no server", "mysql://cifarlab:s3cret@127.0.0.1:1/tune", "--storage mysql://cifarlab:***@127.0.0.1:1/tune: "),
    ("postgresql:// without a driver, no server", "{no_server}", "cannot open the study"),
    ("postgresql+psycopg2://, no server, in a new folder", "{no_server_psycopg2}", "--storage "),
    ("postgresql:// naming no database", "postgresql://", "--storage postgresql://"),
    ("sqlite:/// (in memory)", "sqlite:///", "an in-memory SQLite"),
    ("sqlite:// (in memory)", "sqlite://", "an in-memory SQLite"),
    ("sqlite:///:memory:", "sqlite:///:memory:", "an in-memory SQLite"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "storage", "says"), STORAGES, ids=[s[0] for s in STORAGES])
def test_a_storage_that_cannot_hold_the_search_is_one_line_and_nothing_written(
    name, storage, says, tmp_path, ledger
):
    with ledger.case(STORAGE, f"--storage {name}") as case:
        url = storage.format(
            no_server=no_server(tmp_path),
            no_server_psycopg2=no_server(tmp_path, "postgresql+psycopg2"),
        )
        out = tmp_path / "new" / "tune"  # neither folder exists yet
        argv = tune_argv(tmp_path, out, url)
        case.guard(tmp_path)  # the space file, and where the search would go
        case.allow(tmp_path / "log.txt")
        child = run_cli(argv, tmp_path / "log.txt")
        text = child.output()
        case.check(SECRET in text, "the storage password shown")
        errors = error_lines(text)
        assert child.returncode == 2 and len(errors) == 1, text[-2000:]
        assert says in errors[0] and "Traceback" not in text, errors[0]
        case.note = "refused in one line, no password shown, no folder made"


def test_a_failed_start_of_an_existing_search_keeps_all_of_it(tmp_path, ledger):
    with ledger.case(STORAGE, "another storage given to an existing search, no server") as case:
        out = tmp_path / "tune"
        child = run_cli(tune_argv(tmp_path, out, None), tmp_path / "start.txt")
        assert child.returncode == 0 and (out / "tune.json").is_file(), child.output()[-2000:]
        case.guard(tmp_path)  # the search: study.db, tune.json, summary.json, its log
        case.allow(tmp_path / "log.txt")
        child = run_cli(tune_argv(tmp_path, out, no_server(tmp_path)), tmp_path / "log.txt")
        text = child.output()
        case.check(SECRET in text, "the storage password shown")
        assert child.returncode == 2 and len(error_lines(text)) == 1, text[-2000:]
        case.note = "refused in one line; every file of the search kept"


# --------------------------------------------------------------------------- finished run

# The suite's tiny run: 0.4 epoch of 100 steps = 40 steps, Adam at a constant lr.
RESUME = ["train", "--data-dir", "sample", "--no-progress", "--resume"]

REFUSED = [
    ("longer train.epochs without --allow-change", ["--set", "train.epochs=0.5"], "would change train.epochs"),
    ("shorter train.epochs, allowed", ["--set", "train.epochs=0.2", "--allow-change", "train.epochs"], "finished at step 40 of 40"),
    ("optim.lr changed at the same length, allowed", ["--set", "optim.lr=0.001", "--allow-change", "optim.lr"], "finished at step 40 of 40"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra", "says"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_finished_run_is_never_changed_without_training_on(
    name, extra, says, reference_run, tmp_path, ledger
):
    with ledger.case(FINISHED, name) as case:
        run = copy_run(reference_run, tmp_path / "run")
        case.guard(run)  # every file of the run, byte for byte
        child = run_cli([*RESUME, str(run), *extra], tmp_path / "log.txt")
        errors = error_lines(child.output())
        assert child.returncode == 2 and len(errors) == 1, child.output()[-2000:]
        assert says in errors[0], errors[0]
        case.note = "refused in one line, the run untouched"


def test_a_finished_run_extended_ends_as_a_run_that_long_from_the_start(
    reference_run, tmp_path, ledger
):
    with ledger.case(FINISHED, "longer train.epochs, allowed: trained on from step 40") as case:
        straight = tmp_path / "straight"
        recipe = [a if a != "train.epochs=0.4" else "train.epochs=0.5" for a in RECIPE_ARGS]
        child = run_cli(["train", *recipe, "--out", str(straight)], tmp_path / "straight.txt")
        assert child.returncode == 0, child.output()[-2000:]
        run = copy_run(reference_run, tmp_path / "run")
        argv = [*RESUME, str(run), "--set", "train.epochs=0.5", "--allow-change", "train.epochs"]
        child = run_cli(argv, tmp_path / "extend.txt")
        a, b = weights(run), weights(straight)
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        case.check(not same, "final weights vs a run of 0.5 epoch from the start")
        assert child.returncode == 0 and same, child.output()[-2000:]
        case.note = "50 steps, weights equal to the straight run's"
