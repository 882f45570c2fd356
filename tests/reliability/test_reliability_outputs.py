"""Where commands write, and the numbers they read back (issue 29), counted like every other
fault: the output rule (never over a command's own input, never into a run, study or search
directory another command owns, never over a figure folder the report did not make, never
into a folder that is not there, an older checkpoint's evaluation never over the latest's),
and stored numbers of the wrong type or out of range (temperature.json, metrics.json,
evaluation.json, corruptions.json, a tune summary).

Each case drives the real CLI (`cifarlab.cli.main.main`) on a copy of the suite's tiny run.
Handled: one `cifarlab: error:` line, exit status 2 (or, for an older checkpoint, its own
folder). Data lost: any change under the case's folder (the run, the study, the search, the
user's files, the output's parent) outside what the command is meant to write, and a result
computed from a bad stored number delivered as if it were good.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from relhelpers import run_cli

from cifarlab.cli.main import main
from cifarlab.rundir import load_checkpoint

OUTPUTS = "foreign_outputs"  # rows of docs/RELIABILITY.md (relhelpers.CATEGORIES)
NUMBERS = "stored_numbers"
PREFIX = "cifarlab: error: "


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    """A command that should be refused and is not fails at once instead of training."""
    from cifarlab.jobs import training
    from cifarlab.train import loop

    def accepted(*args, **kwargs):
        raise AssertionError("the output was accepted: training started")

    monkeypatch.setattr(loop, "train", accepted)
    monkeypatch.setattr(training, "train", accepted)


def copy_run(src: Path, dest: Path) -> Path:
    return Path(shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lock")))


def calibrate(argv: list[str], log: Path) -> tuple[int, str]:
    """``cifarlab evaluate ... --calibrate`` in a fresh interpreter: fitting a temperature
    runs autograd, after which this process could no longer fork a training (the suite
    does), and a fork of this process, which has run torch's threads, may hang."""
    child = run_cli(argv, log, fork=False)
    return child.returncode, child.output()


def quiet_main(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


def refused(argv: list[str], capsys) -> tuple[int, str]:
    """Run ``cifarlab ARGV``: its exit status and its error output."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    return code, capsys.readouterr().err.strip()


def one_line(err: str) -> str:
    assert err.startswith(PREFIX) and len(err.splitlines()) == 1, err[-2000:]
    return err


# --------------------------------------------------------------------------- outputs


@pytest.fixture
def places(reference_run, tmp_path) -> dict[str, Path]:
    """Two runs, a study directory and a search directory (their marker files), by copy."""
    run = copy_run(reference_run, tmp_path / "run")
    other = copy_run(reference_run, tmp_path / "other")
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"kind": "seeds"}))
    search = tmp_path / "search"
    search.mkdir()
    (search / "tune.json").write_text(json.dumps({"format": "cifarlab-tune"}))
    return {"run": run, "other": other, "study": study, "search": search}


FOREIGN = [
    (["report", "{run}", "-o", "{run}/checkpoint.pt", "--format", "html"], "own input"),
    (["report", "{run}", "-o", "{run}/metrics.json", "--format", "html"], "own input"),
    (["report", "{run}", "-o", "{run}/history.json", "--format", "html"], "own input"),
    (["report", "{run}", "-o", "{study}/report.html"], "a study directory"),
    (["report", "{run}", "-o", "{other}/report.html"], "a run directory"),
    (["export", "{run}", "-o", "{run}"], "own input"),
    (["export", "{run}", "-o", "{study}/exported"], "a study directory"),
    (["data", "--data-dir", "sample", "--out", "{run}"], "a run directory"),
    (["train", "--data-dir", "sample", "--out", "{study}/runs/x"], "a study"),
    (["train", "--data-dir", "sample", "--out", "{run}/inner"], "a run directory"),
    (["seeds", "-n", "2", "--data-dir", "sample", "--out", "{search}/seeds"], "a search"),
    (["tune", "--trials", "0", "--data-dir", "sample", "--out", "{run}/search"], "a run"),
    (["evaluate", "{run}", "--device", "cpu", "--out", "{search}"], "a search directory"),
    (["evaluate", "{run}", "--device", "cpu", "--out", "{run}"], "own input"),
]


@pytest.mark.parametrize(("command", "says"), FOREIGN, ids=[" ".join(c) for c, _ in FOREIGN])
def test_no_command_writes_over_its_input_or_into_what_another_owns(
    command, says, places, tmp_path, ledger, capsys
):
    argv = [a.format(**{k: str(v) for k, v in places.items()}) for a in command]
    with ledger.case(OUTPUTS, "cifarlab " + " ".join(command), guard=[tmp_path]) as case:
        code, err = refused(argv, capsys)
        case.check(code == 0, "the command ran into what it does not own (exit 0)")
        assert code == 2 and says in one_line(err), err[-2000:]
        case.note = "refused in one line naming the path"


@pytest.mark.parametrize("what", ["a copied run", "a user's own file"])
def test_a_markdown_report_never_replaces_a_figure_folder_it_did_not_make(
    what, reference_run, tmp_path, ledger, capsys
):
    with ledger.case(OUTPUTS, f"report -o rep.md beside rep_files/ holding {what}") as case:
        run = copy_run(reference_run, tmp_path / "run")
        folder = tmp_path / "rep_files"
        if what == "a copied run":
            copy_run(run, folder)
        else:
            folder.mkdir()
            (folder / "notes.txt").write_text("mine")
        case.guard(tmp_path)  # the run, the figure folder, where rep.md would go
        code, err = refused(
            ["report", str(run), "--format", "md", "-o", str(tmp_path / "rep.md")], capsys
        )
        assert code == 2 and "did not make" in one_line(err) and str(folder) in err, err
        case.note = "refused; the folder and its files kept"


def test_a_report_into_a_missing_folder_creates_nothing(reference_run, tmp_path, ledger, capsys):
    with ledger.case(OUTPUTS, "report -o missing/deeper/r.html") as case:
        run = copy_run(reference_run, tmp_path / "run")
        case.guard(tmp_path)
        code, err = refused(
            ["report", str(run), "-o", str(tmp_path / "missing/deeper/r.html")], capsys
        )
        assert code == 2 and "does not exist" in one_line(err), err
        case.note = "refused; no folder made"


@pytest.fixture
def two_checkpoints(reference_run, tmp_path) -> tuple[Path, int, int]:
    """A run copy whose checkpoint.prev.pt is an older step than checkpoint.pt."""
    run = copy_run(reference_run, tmp_path / "run")
    latest = load_checkpoint(run)["step"]
    older = load_checkpoint(run / "checkpoint.prev.pt")["step"]
    assert older < latest
    return run, latest, older


def test_an_older_checkpoints_evaluation_goes_to_its_own_folder(two_checkpoints, ledger, capsys):
    run, latest, older = two_checkpoints
    with ledger.case(OUTPUTS, "evaluate checkpoint.prev.pt after the latest's evaluation") as case:
        assert quiet_main(["evaluate", str(run), "--device", "cpu", "--data-dir", "sample"]) == 0
        case.guard(run)  # the latest's evaluation/none/ among the run's files
        case.allow_tree(run / "evaluation" / f"step-{older}")
        argv = [
            "evaluate",
            str(run / "checkpoint.prev.pt"),
            "--device",
            "cpu",
            "--data-dir",
            "sample",
        ]
        assert quiet_main(argv) == 0
        mine = json.loads(
            (run / "evaluation" / f"step-{older}" / "none" / "evaluation.json").read_text()
        )
        assert mine["step"] == older
        case.note = f"step {older} in evaluation/step-{older}/, step {latest}'s kept"


def test_calibrating_an_older_checkpoint_is_refused(two_checkpoints, ledger):
    run, latest, older = two_checkpoints
    with ledger.case(
        OUTPUTS, "evaluate checkpoint.prev.pt --calibrate over a calibrated run"
    ) as case:
        argv = ["evaluate", str(run), "--device", "cpu", "--data-dir", "sample", "--calibrate"]
        code, text = calibrate(argv, run.parent / "calibrate.txt")
        assert code == 0, text[-2000:]
        case.guard(run)  # temperature.json, fitted on the latest checkpoint
        argv[1] = str(run / "checkpoint.prev.pt")
        code, text = calibrate(argv, run.parent / "older.txt")
        case.check(code == 0, "a temperature fitted on the older checkpoint (exit 0)")
        errors = [line for line in text.splitlines() if line.startswith(PREFIX)]
        assert code == 2 and len(errors) == 1 and "latest checkpoint" in errors[0], text[-2000:]
        case.note = "refused; the latest's temperature.json kept"


# --------------------------------------------------------------------------- stored numbers


@pytest.fixture(scope="module")
def calibrated(reference_run, tmp_path_factory) -> Path:
    """The tiny run, evaluated and calibrated (temperature.json, evaluation/none/)."""
    run = copy_run(reference_run, tmp_path_factory.mktemp("calibrated") / "run")
    argv = ["evaluate", str(run), "--device", "cpu", "--data-dir", "sample", "--calibrate"]
    code, text = calibrate(argv, run.parent / "calibrate.txt")
    assert code == 0, text[-2000:]
    return run


def _edit(path: Path, **changes) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))  # json.dumps writes nan as NaN


TEMPERATURES = {"1e-300": 1e-300, "1e308": 1e308, "NaN": float("nan")}


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
@pytest.mark.parametrize("value", list(TEMPERATURES))
def test_a_temperature_out_of_range_is_refused_by_every_command(
    value, command, calibrated, sample_data, tmp_path, ledger, capsys
):
    with ledger.case(NUMBERS, f"temperature.json temperature {value}: {command}") as case:
        run = copy_run(calibrated, tmp_path / "run")
        _edit(run / "temperature.json", temperature=TEMPERATURES[value])
        picture = tmp_path / "a.png"
        Image.fromarray(sample_data.test_images[0]).save(picture)
        argv = {
            "predict": ["predict", str(run), str(picture), "--json"],
            "evaluate": ["evaluate", str(run), "--device", "cpu", "--data-dir", "sample", "--json"],
            "export": ["export", str(run), "-o", str(tmp_path / "exported")],
        }[command]
        case.guard(tmp_path)  # the run, the picture, where the export would go
        code, err = refused(argv, capsys)
        case.check(code == 0, "a result computed with the bad temperature delivered (exit 0)")
        assert code == 2 and "temperature.json: temperature is " in one_line(err), err
        case.note = "one line naming the file and field"


def _tune_dir(root: Path, value) -> Path:
    """A tune directory as `cifarlab tune` leaves it (tune.json, summary.json), by hand."""
    root.mkdir()
    (root / "tune.json").write_text(json.dumps({"format": "cifarlab-tune", "study": "s"}))
    trial = {"number": 0, "state": "complete", "value": value, "params": {"optim.lr": 0.01},
             "seed": 0, "start": True, "intermediate": [[500, 40.0], [1000, 50.0]],
             "duration_s": 1.0}  # fmt: skip
    space = {"field": "optim.lr", "describe": "log-uniform", "start": 0.01,
             "distribution": {"log_uniform": [0.001, 0.1]}}  # fmt: skip
    summary = {
        "format": "cifarlab-tune-summary", "study": "s", "storage": "sqlite",
        "recipe": "seed-baseline", "target_trials": 1, "objective": "validation accuracy (%)",
        "vary_seed": False, "pruner": {"name": "none", "warmup": 0.2, "startup": 0},
        "space": [space],
        "counts": {"complete": 1, "pruned": 0, "failed_error": 0, "failed_killed": 0, "running": 0},
        "best": {"number": 0, "value": value, "params": {"optim.lr": 0.01}, "seed": 0},
        "importance": {"values": {}, "note": "one trial"}, "trials": [trial],
    }  # fmt: skip
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def _bad_metrics(value):
    return lambda run: _edit(run / "metrics.json", test_accuracy=value)


def _bad_ece(run: Path) -> None:
    _edit(run / "evaluation" / "none" / "evaluation.json", ece="low")


def _bad_corruptions(value):
    def make(run: Path) -> None:
        path = run / "evaluation" / "none" / "corruptions.json"
        path.write_text(json.dumps({"accuracy": {"fog": {"1": value}}}))

    return make


STORED = [
    ("metrics.json test_accuracy 1.5", _bad_metrics(1.5), "metrics.json: test_accuracy is "),
    ("metrics.json test_accuracy -0.1", _bad_metrics(-0.1), "metrics.json: test_accuracy is "),
    ("metrics.json test_accuracy as text", _bad_metrics("0.9"), "metrics.json: test_accuracy is "),
    (
        "metrics.json test_accuracy NaN",
        _bad_metrics(float("nan")),
        "metrics.json: test_accuracy is ",
    ),
    (
        "metrics.json test_ece as markup text",
        lambda run: _edit(run / "metrics.json", test_ece="<b>0.1</b>"),
        "metrics.json: test_ece is ",
    ),
    ("evaluation.json ece as text", _bad_ece, 'evaluation.json: ece is "low", not a number'),
    (
        "corruptions.json accuracy as text",
        _bad_corruptions("high"),
        "corruptions.json: accuracy.fog.1 is ",
    ),
    (
        "corruptions.json accuracy 1.5",
        _bad_corruptions(1.5),
        "corruptions.json: accuracy.fog.1 is ",
    ),
    (
        "corruptions.json accuracy NaN",
        _bad_corruptions(float("nan")),
        "corruptions.json: accuracy.fog.1 is ",
    ),
]


@pytest.mark.parametrize(("name", "damage", "says"), STORED, ids=[s[0] for s in STORED])
def test_a_bad_stored_number_is_one_line_and_no_report(
    name, damage, says, calibrated, tmp_path, ledger, capsys
):
    with ledger.case(NUMBERS, f"report of a run whose {name}") as case:
        run = copy_run(calibrated, tmp_path / "run")
        damage(run)
        case.guard(tmp_path)  # the run, and where the report would go
        code, err = refused(["report", str(run), "-o", str(tmp_path / "r.html")], capsys)
        case.check(code == 0, "a report showing the bad number written (exit 0)")
        assert code == 2 and says in one_line(err), err[-2000:]
        case.note = "one line naming the file and field; no report"


def test_a_tune_summary_with_a_text_trial_value_is_one_line(tmp_path, ledger, capsys):
    with ledger.case(NUMBERS, 'report of a tune summary whose trial value is "50"') as case:
        good = _tune_dir(tmp_path / "good", 50.0)
        assert quiet_main(["report", str(good), "-o", str(tmp_path / "good.html")]) == 0
        bad = _tune_dir(tmp_path / "bad", "50")
        case.guard(tmp_path)
        code, err = refused(["report", str(bad), "-o", str(tmp_path / "bad.html")], capsys)
        case.check(code == 0, "a report showing the text value written (exit 0)")
        assert code == 2 and 'trials[0].value is "50", not a number' in one_line(err), err
        case.note = "one line naming the field; the good summary reports"
