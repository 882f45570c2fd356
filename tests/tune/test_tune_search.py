"""cifarlab tune on the bundled sample: trials as run directories, the best recipe, resume,
a SIGKILL mid-trial, and pruning of a bad region before its last evaluation point."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import optuna
import pytest
from tunehelpers import TINY, cli, quiet, start_until_paused, tiny_set

from cifarlab.recipe import load_recipe
from cifarlab.rundir import RunDir, load_checkpoint
from cifarlab.tune.results import read_tune_dir
from cifarlab.tune.search import run_tune
from cifarlab.tune.spec import make_spec


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def by_number(out: Path) -> dict[int, dict]:
    return {t["number"]: t for t in summary(out)["trials"]}


def run_in_process(spec, out: Path, trials: int, lines: list[str] | None = None) -> dict:
    log = lines.append if lines is not None else quiet
    return run_tune(spec, out, trials=trials, data_dir="sample", log=log)


def test_a_search_completes_and_writes_the_best_recipe(searched):
    s = summary(searched)
    assert s["counts"] == {
        "complete": 3,
        "pruned": 0,
        "failed": 0,
        "failed_error": 0,
        "failed_killed": 0,
        "running": 0,
        "waiting": 0,
        "finished": 3,
    }
    trials = by_number(searched)
    # Trial 0 trains the starting recipe's own values (seednet's dropout default, 0).
    assert trials[0]["start"] and trials[0]["params"] == {
        "optim.lr": 1e-3,
        "model.options.dropout": 0.0,
    }
    for number, t in trials.items():
        run = searched / "trials" / f"{number:04d}"
        assert t["run"] == f"trials/{number:04d}" and RunDir(run).is_finished()
        metrics = json.loads((run / "metrics.json").read_text())
        history = json.loads((run / "history.json").read_text())
        # The objective is the last validation accuracy, never the test accuracy.
        assert t["value"] == pytest.approx(100 * metrics["val_accuracy"])
        assert t["intermediate"] == [[500, 100 * history["val_acc"][1]], [1000, t["value"]]]
        assert t["seed"] == 0 and metrics["seed"] == 0
        record = json.loads((run / "trial.json").read_text())
        assert record["state"] == "complete" and record["params"] == t["params"]
        recipe = load_recipe(run / "recipe.toml")
        assert recipe.optim.lr == t["params"]["optim.lr"]
        assert recipe.model.options["dropout"] == t["params"]["model.options.dropout"]
    best = s["best"]
    assert best["value"] == max(t["value"] for t in trials.values())
    tuned = load_recipe(searched / "best.toml")  # what `cifarlab train --recipe` reads
    assert tuned.name == "seed-baseline-tuned"
    assert tuned.optim.lr == best["params"]["optim.lr"]
    assert tuned.model.options["dropout"] == best["params"]["model.options.dropout"]
    assert tuned.train.epochs == TINY["train.epochs"]
    start = load_recipe(searched / "start.toml")  # the recipe with --set, as searched
    assert start.name == "seed-baseline" and start.train.epochs == TINY["train.epochs"]
    assert start.optim.lr == 1e-3 and start.model.options == {}
    assert s["importance"]["values"].keys() == {"optim.lr", "model.options.dropout"}
    assert read_tune_dir(searched).summary == s
    assert not list((searched / "workers").iterdir())  # the worker's lock is gone


def test_rerun_resumes_without_rerunning_finished_trials(copy_search, tiny_spec, space_file):
    space = str(space_file)
    out = copy_search()
    before = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/metrics.json")}
    lines: list[str] = []
    run_in_process(tiny_spec(), out, trials=4, lines=lines)
    assert "3 of 4 trials finished" in lines[0]
    assert [line.split(":")[0] for line in lines if " started" in line] == ["trial 3 started"]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert summary(out)["counts"]["complete"] == 4

    # Another recipe, space or --set into the same folder is refused, naming what differs.
    from cifarlab.tune import TuneError

    changed = {**TINY, "optim.weight_decay": 1e-4}
    with pytest.raises(TuneError, match=r"holds another search \(overrides.optim.weight_decay"):
        run_in_process(make_spec("seed-baseline", space, changed, pruner="none"), out, trials=4)


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_loses_no_trial_and_counts_none_twice(copy_search, space_file):
    out = copy_search()  # trials 0-2 complete
    cmd = ["tune", "--recipe", "seed-baseline", "--space", str(space_file), *tiny_set()]
    cmd += ["--pruner", "none", "--trials", "5", "--data-dir", "sample", "--out", str(out)]
    argv = [sys.executable, "-m", "cifarlab", *cmd]
    # Trial 3 stops just after its step-25 checkpoint (of 50) is in place: killed there.
    proc, lines = start_until_paused(argv, "summary@25")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert any("paused at checkpoint summary step 25" in x for x in lines), "".join(lines)
    killed = load_checkpoint(out / "trials/0003")
    assert killed["step"] == 25 and not RunDir(out / "trials/0003").is_finished()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/metrics.json")}
    assert len(finished) == 3

    r = cli(*cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "trial 3: its worker" in r.stdout and "failed, to be retried" in r.stdout
    assert "trial 4 started (retry of trial 3, from its step-25 checkpoint)" in r.stdout
    s, trials = summary(out), by_number(out)
    assert s["counts"]["complete"] == 5 and s["counts"]["finished"] == 5
    assert s["counts"]["failed_killed"] == 1 and s["counts"]["running"] == 0
    assert trials[3]["state"] == "failed" and trials[3]["killed"]
    assert trials[4]["retry_of"] == 3
    assert trials[4]["params"] == trials[3]["params"] and trials[4]["seed"] == trials[3]["seed"]
    # The retry continued the killed run (moved to trial 4's number) from step 25.
    assert not (out / "trials/0003").exists()
    log = (out / "trials/0004/train.log").read_text()
    assert "at step 25" in log and "resuming" in log
    history = json.loads((out / "trials/0004/history.json").read_text())
    assert history["step"] == [0, 25, 50]
    assert trials[4]["intermediate"] == [
        [500, 100 * history["val_acc"][1]],
        [1000, trials[4]["value"]],
    ]
    # Nothing that had finished ran again; each parameter set finished once.
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    done = [t for t in trials.values() if t["state"] == "complete"]
    assert sorted(t["number"] for t in done) == [0, 1, 2, 4, 5]
    assert (out / "trials/0005/metrics.json").is_file()


@pytest.mark.slow
def test_a_trial_killed_before_its_first_checkpoint_is_recorded_as_killed(tmp_path, space_file):
    out = tmp_path / "tune"
    cmd = ["tune", "--recipe", "seed-baseline", "--space", str(space_file)]
    cmd += [*tiny_set({"train.epochs": 0.2}), "--pruner", "none", "--trials", "1"]
    cmd += ["--data-dir", "sample", "--out", str(out)]
    # Trial 0 (10 steps) is killed while it writes its first checkpoint, at step 5: no
    # checkpoint is in place, so its retry starts afresh and the killed run stays where it is.
    proc, lines = start_until_paused([sys.executable, "-m", "cifarlab", *cmd], "write@5")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert any("paused at checkpoint write step 5" in x for x in lines), "".join(lines)
    killed = out / "trials/0000"
    assert json.loads((killed / "trial.json").read_text())["state"] == "running"
    assert (killed / ".lock").exists() and not RunDir(killed).has_checkpoint()

    r = cli(*cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "trial 0: its worker" in r.stdout
    assert "trial 1 started (retry of trial 0, afresh)" in r.stdout
    trials = by_number(out)
    assert trials[0]["state"] == "failed" and trials[0]["killed"]
    assert trials[1]["state"] == "complete" and trials[1]["retry_of"] == 0
    # The killed trial's own record says how it ended, and which trial retried it; the lock
    # its dead process left is gone.
    record = json.loads((killed / "trial.json").read_text())
    assert record["state"] == "killed" and record["trial"] == 0
    assert record["reason"].startswith(f"its worker {trials[0]['worker']} stopped mid-trial")
    assert record["reason"].endswith("retried as trial 1")
    assert not (killed / ".lock").exists()
    assert json.loads((out / "trials/0001/trial.json").read_text())["state"] == "complete"


def test_timeout_starts_no_trial_after_it_and_lets_the_running_one_finish(
    tmp_path, tiny_spec, monkeypatch
):
    import cifarlab.tune.worker as worker

    # A clock that passes the 60 s timeout as soon as trial 0 has started.
    clock = [1000.0]
    monkeypatch.setattr(worker, "_now", lambda: clock[0])
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("trial 0 started"):
            clock[0] += 61

    out = tmp_path / "tune"
    s = run_tune(tiny_spec(), out, trials=2, timeout=60, data_dir="sample", log=log)
    assert [x.split(":")[0] for x in lines if " started" in x] == ["trial 0 started"]
    assert s["counts"]["complete"] == 1 and s["counts"]["running"] == 0
    assert s["stopped"] == "timeout" and summary(out)["stopped"] == "timeout"
    assert lines[-1].startswith(
        f"study {s['study']}: stopped on --timeout 60 s with 1 of 2 trials finished"
    )
    assert (out / "trials/0000/metrics.json").is_file() and not (out / "trials/0001").exists()

    # Rerun without it: the search goes on to 2, and the summary no longer says it stopped.
    s = run_in_process(tiny_spec(), out, trials=2)
    assert s["counts"]["complete"] == 2 and s["stopped"] is None


def test_a_bad_region_is_pruned_before_its_last_evaluation_point(tmp_path, space_file):
    space = tmp_path / "bad-lr.toml"
    space.write_text('"optim.lr" = { log_uniform = [1e-9, 3e-3] }\n', encoding="utf-8")
    spec = make_spec(
        "seed-baseline", str(space), dict(TINY), pruner="median", prune_startup=1, prune_warmup=0
    )
    out = tmp_path / "tune"
    run_in_process(spec, out, trials=1)  # trial 0: the recipe's lr, 1e-3
    # Trial 1: an lr that cannot train (1e-9): chance accuracy at the first point.
    study = optuna.load_study(study_name=spec.study, storage=f"sqlite:///{out / 'study.db'}")
    study.enqueue_trial({"optim.lr": 1e-9})
    lines: list[str] = []
    run_in_process(spec, out, trials=2, lines=lines)

    trials = by_number(out)
    assert trials[0]["state"] == "complete"
    bad = trials[1]
    assert bad["state"] == "pruned" and bad["params"] == {"optim.lr": 1e-9}
    # What Optuna was told at the first point is that run's own validation accuracy there (%),
    # as its checkpoint's history holds it, and a chance-level one (10 classes: 10%): an lr of
    # 1e-9 cannot train. Trial 0, at the same point, is far above chance.
    history = load_checkpoint(out / "trials/0001")["history"]
    assert history["step"] == [0, 25] and 0 <= history["val_acc"][1] <= 1
    assert bad["intermediate"] == [[500, pytest.approx(100 * history["val_acc"][1])]]
    assert 0 <= bad["intermediate"][0][1] <= 20 < trials[0]["intermediate"][0][1]
    assert any("trial 1 pruned at 50% of the run (step 25 of 50)" in x for x in lines), lines
    # Its run directory is consistent: unlocked, a valid checkpoint of the point, marked pruned.
    run = out / "trials/0001"
    assert not (run / ".lock").exists() and not RunDir(run).is_finished()
    assert load_checkpoint(run)["step"] == 25
    record = json.loads((run / "trial.json").read_text())
    assert record["state"] == "pruned" and "50% of the run" in record["reason"]
    assert summary(out)["counts"]["pruned"] == 1 and summary(out)["best"]["number"] == 0


@pytest.mark.slow
def test_jobs_2_runs_two_worker_processes_on_one_sqlite_study(tmp_path, space_file):
    out = tmp_path / "tune"
    r = cli(
        *("tune", "--recipe", "seed-baseline", "--space", str(space_file)),
        *tiny_set({"train.epochs": 0.2}),
        *("--pruner", "none", "--trials", "3", "--jobs", "2"),
        *("--data-dir", "sample", "--out", str(out)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(out)
    # N finished; two workers starting their last trial at once may add one more.
    assert 3 <= s["counts"]["complete"] == s["counts"]["finished"] <= 4
    assert s["counts"]["running"] == 0 and s["counts"]["failed"] == 0
    assert len({t["worker"] for t in s["trials"]}) == 2
    assert not list((out / "workers").iterdir())
