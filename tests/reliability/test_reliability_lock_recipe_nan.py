"""Two runs into one directory, bad recipe values, and a non-finite loss.

- A second run started into a directory a run is writing to is refused (an flock),
  writes nothing there, and the first run's checkpoints stay intact and resumable.
- Each bad recipe value gives exactly one one-line error naming the field (exit 2).
- A non-finite loss stops the run with a clear message and keeps the last good
  checkpoint, from which a resume ends exactly as the uninterrupted run.
"""

from __future__ import annotations

import os
import random
import time

import pytest
import torch
import torch.nn.functional as F
from relhelpers import (
    CHECKPOINT_EVERY,
    OVERRIDES,
    SAME_AS_REFERENCE,
    TOTAL_STEPS,
    run_cli,
    same_result,
    start_cli,
    temp_files,
    train_argv,
)

from cifarlab.cli.main import main
from cifarlab.errors import RecipeError, TrainingError
from cifarlab.recipe import load_recipe
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

SEED = int(os.environ.get("CIFARLAB_RELIABILITY_SEED", "8"))

# --------------------------------------------------------------------------- two runs


def test_second_run_into_a_busy_directory_is_refused(tmp_path, reference_run, ledger, capsys):
    run = tmp_path / "run"
    hold = 2 * CHECKPOINT_EVERY
    first = start_cli(train_argv(run), tmp_path / "first.log", pause=f"rotate@{hold}")
    first.wait_for_output(f"paused at checkpoint rotate step {hold}")
    pid = str(first.pid)
    attempts = [
        ("second `train --out` into the same directory", train_argv(run), True),
        (
            "`train --resume` of the directory while it trains",
            ["train", "--resume", str(run), "--data-dir", "sample"],
            True,
        ),
        ("second run, fresh interpreter", train_argv(run), False),
    ]
    for name, argv, fork in attempts:
        with ledger.case("lock", name, guard=[run]) as case:
            second = run_cli(argv, tmp_path / "second.log", fork=fork)
            out = second.output()
            assert second.returncode == 2, out[-2000:]
            line = [x for x in out.splitlines() if x.startswith("cifarlab: error: ")]
            assert len(line) == 1 and f"another cifarlab run (pid {pid})" in line[0], out[-2000:]
            case.note = line[0][len("cifarlab: error: ") :].replace(str(run), "DIR")[:150]
    with ledger.case("lock", "in-process train() into the same directory", guard=[run]):
        with pytest.raises(TrainingError, match=f"pid {pid}"):
            train(
                "seed-improved",
                out_dir=run,
                data_dir="sample",
                overrides=OVERRIDES,
                log=lambda s: None,
            )
    with ledger.case(
        "lock", "the holder is SIGKILLed: the lock goes with it, resume matches"
    ) as case:
        first.kill()
        res = run_cli(
            ["train", "--resume", str(run), "--data-dir", "sample", "--no-progress"],
            tmp_path / "resume.log",
        )
        assert res.returncode == 0, res.output()[-2000:]
        assert not case.check(not same_result(run, reference_run), SAME_AS_REFERENCE)
        assert temp_files(run) == []


def test_two_runs_started_together_one_wins(tmp_path, ledger):
    run = tmp_path / "run"
    pause = f"rotate@{CHECKPOINT_EVERY * 2}"
    with ledger.case("lock", "two runs started at the same moment into a new directory") as case:
        a = start_cli(train_argv(run), tmp_path / "a.log", pause=pause)
        b = start_cli(train_argv(run), tmp_path / "b.log", pause=pause)
        deadline = time.time() + 240
        while True:
            outs = [a.output(), b.output()]
            paused = [("paused at checkpoint" in o) for o in outs]
            if any(paused) and any(c.poll() is not None for c in (a, b)):
                break
            assert time.time() < deadline and all(c.poll() in (None, 2) for c in (a, b)), outs
            time.sleep(0.02)
        winner, loser = (a, b) if paused[0] else (b, a)
        assert loser.returncode == 2 and "another cifarlab run" in loser.output()
        winner.kill()
        kept = load_checkpoint(run)["step"]
        assert not case.check(kept != CHECKPOINT_EVERY, "the winner's last checkpoint kept")
        case.note = "one trained, the other exited 2 with the lock message"


# --------------------------------------------------------------------------- recipes

BAD_SETS = [
    ("unknown key", "optim.lrr=1e-3", "optim: unknown key 'lrr'"),
    ("unknown section", "trian.epochs=1", "recipe: unknown key 'trian'"),
    ("unknown top-level key", "foo=1", "recipe: unknown key 'foo'"),
    ("key below a value", "optim.lr.x=1", "--set optim.lr.x: 'lr' is a value"),
    ("value for a section", "train=5", "train: expected a table"),
    ("wrong type: string lr", 'optim.lr="fast"', "optim.lr: expected a number"),
    (
        "wrong type: float batch size",
        "train.batch_size=32.5",
        "train.batch_size: expected an integer",
    ),
    (
        "wrong type: bool batch size",
        "train.batch_size=true",
        "train.batch_size: expected an integer",
    ),
    ("wrong type: int for bool", "augment.flip=1", "augment.flip: expected true or false"),
    ("wrong type: number for model name", "model.name=5", "model.name: expected a string"),
    ("wrong type: scalar for list", "optim.betas=0.9", "optim.betas: expected a list"),
    (
        "wrong type: strings in a list",
        'data.mean=["a", "b", "c"]',
        "data.mean[0]: expected a number",
    ),
    ("negative lr", "optim.lr=-1e-3", "optim.lr: must be > 0"),
    ("zero lr", "optim.lr=0", "optim.lr: must be > 0"),
    ("NaN lr", "optim.lr=nan", "optim.lr: expected a finite number"),
    ("infinite lr", "optim.lr=inf", "optim.lr: expected a finite number"),
    ("zero batch size", "train.batch_size=0", "train.batch_size: must be > 0"),
    ("negative batch size", "train.batch_size=-8", "train.batch_size: must be > 0"),
    ("negative epochs", "train.epochs=-1", "train.epochs: must be > 0"),
    ("zero evaluation points", "train.eval_points=0", "train.eval_points: must be > 0"),
    ("negative seed", "seed=-1", "seed: must be >= 0"),
    ("validation fraction 1", "data.val_fraction=1.0", "data.val_fraction: must be in [0, 1)"),
    (
        "label smoothing 1.5",
        "train.label_smoothing=1.5",
        "train.label_smoothing: must be in [0, 1)",
    ),
    ("two mean values", "data.mean=[0.5, 0.5]", "data.mean: needs 3 values"),
    ("zero std", "data.std=[0.5, 0, 0.5]", "data.std: must be positive"),
    ("unknown optimizer", 'optim.name="adamm"', "optim.name: 'adamm' is not allowed"),
    ("unknown schedule", 'schedule.name="cosin"', "schedule.name: 'cosin' is not allowed"),
    ("unknown device", 'system.device="tpu"', "system.device: 'tpu' is not allowed"),
    ("unknown model", 'model.name="resnet9000"', "model.name: 'resnet9000' is not allowed"),
    (
        "negative checkpoint interval",
        "train.checkpoint_every=-1",
        "train.checkpoint_every: must be >= 0",
    ),
    ("zero eval batch", "eval.batch_size=0", "eval.batch_size: must be > 0"),
    ("--set without '='", "optim.lr", "--set 'optim.lr': expected key=value"),
    ("--set without a key", "=3", "--set '=3': expected key=value"),
]

BAD_FILES = [
    ("TOML: unknown key in a section", "[optim]\nlrr = 1e-3\n", "optim: unknown key 'lrr'"),
    ("TOML: unknown top-level key", "epochs = 3\n", "recipe: unknown key 'epochs'"),
    ("TOML: wrong type", '[train]\nbatch_size = "32"\n', "train.batch_size: expected an integer"),
    ("TOML: negative lr", "[optim]\nlr = -0.1\n", "optim.lr: must be > 0"),
    ("TOML: zero batch size", "[train]\nbatch_size = 0\n", "train.batch_size: must be > 0"),
    ("TOML: negative epochs", "[train]\nepochs = -2\n", "train.epochs: must be > 0"),
    ("TOML: syntax error", "[train\nepochs = 1\n", "not valid TOML"),
    ("TOML: base that does not exist", 'base = "no-such-recipe"\n', "no such built-in recipe"),
    ("TOML: base that loops", 'base = "{self}"\n', "'base' chain loops"),
]


@pytest.mark.parametrize("name,item,expected", BAD_SETS, ids=[b[0] for b in BAD_SETS])
def test_bad_set_value_is_one_clear_error(name, item, expected, tmp_path, ledger, capsys):
    out = tmp_path / "run"
    with ledger.case("bad_recipe", f"--set {item} ({name})", guard=[tmp_path]) as case:
        capsys.readouterr()
        code = main(["train", "--recipe", "seed-baseline", "--set", item, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith("cifarlab: error: ") and len(err.splitlines()) == 1, err
        assert expected in err, err
        assert not out.exists(), "a refused recipe created the run directory"
        case.note = err[len("cifarlab: error: ") :][:150]


@pytest.mark.parametrize("name,text,expected", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_recipe_file_is_one_clear_error(name, text, expected, tmp_path, ledger, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("{self}", str(path)))
    with ledger.case("bad_recipe", name, guard=[tmp_path]) as case:
        with pytest.raises(RecipeError) as err:
            load_recipe(path)
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
        capsys.readouterr()
        assert main(["train", "--recipe", str(path), "--out", str(tmp_path / "run")]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        case.note = str(err.value).replace(str(path), "FILE")[:150]


def test_bad_epochs_flag_is_one_clear_error(tmp_path, ledger, capsys):
    name = "--epochs -1 (negative epochs from the flag)"
    with ledger.case("bad_recipe", name, guard=[tmp_path]):
        capsys.readouterr()
        assert main(["train", "--epochs", "-1", "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "cifarlab: error: train.epochs: must be > 0, got -1.0", err


# --------------------------------------------------------------------------- non-finite loss


LAST_GOOD_KEPT = "last good checkpoint loads, finite, at the expected step"


def _inject(monkeypatch, at_step: int, value: float) -> None:
    """Make the training loss at optimizer step ``at_step`` (1-based) equal ``value``."""
    real = F.cross_entropy
    calls = {"n": 0}

    def cross_entropy(logits, *args, **kwargs):
        loss = real(logits, *args, **kwargs)
        if logits.requires_grad:  # a training step, not an evaluation
            calls["n"] += 1
            if calls["n"] == at_step:
                return loss * value if value != 0 else loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", cross_entropy)


def _nonfinite_cases() -> list[tuple[str, int, float, bool]]:
    rng = random.Random(f"{SEED}-nan")
    steps = rng.sample(range(CHECKPOINT_EVERY + 1, TOTAL_STEPS), 3)
    return [
        (f"NaN loss at step {steps[0]}", steps[0], float("nan"), True),
        (f"NaN loss at step {steps[1]}", steps[1], float("nan"), False),
        (f"+inf loss at step {steps[2]}", steps[2], float("inf"), True),
        (
            f"-inf loss at step {CHECKPOINT_EVERY * 2 + 1}",
            CHECKPOINT_EVERY * 2 + 1,
            float("-inf"),
            False,
        ),
        ("NaN loss at step 1 (before any checkpoint)", 1, float("nan"), False),
    ]


@pytest.mark.parametrize("name,at,value,resume", _nonfinite_cases(), ids=lambda x: str(x))
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(
    name, at, value, resume, tmp_path, reference_run, ledger, monkeypatch, capsys
):
    run = tmp_path / "run"
    with ledger.case("nonfinite", name) as case:
        with monkeypatch.context() as m:
            _inject(m, at, value)
            capsys.readouterr()
            code = main(train_argv(run))
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"step {at}: training loss is" in err and "non-finite" in err, err
        assert not (run / "metrics.json").exists()
        last = (at - 1) // CHECKPOINT_EVERY * CHECKPOINT_EVERY
        if last == 0:
            assert "no checkpoint was written yet" in err
            assert not (run / "checkpoint.pt").exists()
            case.na = "stopped before the first checkpoint: no data existed yet"
            case.note = "stopped before the first checkpoint; nothing to keep"
            return
        try:
            kept = load_checkpoint(run)
        except Exception:
            case.check(True, LAST_GOOD_KEPT)
            raise
        finite = all(
            torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point()
        )
        case.check(kept["step"] != last or not finite, LAST_GOOD_KEPT)
        assert kept["step"] == last and finite and f"(step {last}) is kept" in err, err
        case.note = f"stopped; checkpoint of step {last} kept"
        if resume:  # the fault was transient: resuming ends exactly as the uninterrupted run
            assert (
                main(["train", "--resume", str(run), "--data-dir", "sample", "--no-progress"]) == 0
            )
            assert not case.check(not same_result(run, reference_run), SAME_AS_REFERENCE)
            case.note += "; resumed to the identical result"


def test_diverging_lr_stops_with_a_clear_message(tmp_path, ledger, capsys):
    run = tmp_path / "run"
    with ledger.case("nonfinite", "divergence (SGD at lr 1e6)") as case:
        capsys.readouterr()
        argv = train_argv(run) + [
            "--set",
            "optim.name='sgd'",
            "--set",
            "optim.lr=1e6",
            "--set",
            "train.checkpoint_every=1",
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "non-finite" in err and len(err.splitlines()) == 1, err
        kept = load_checkpoint(run)
        ok = all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
        assert not case.check(not ok, LAST_GOOD_KEPT)
        case.note = f"stopped; checkpoint of step {kept['step']} kept"
