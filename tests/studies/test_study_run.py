"""Studies on the bundled sample with a tiny ladder: layout, summary, kill + resume, shards.

Training is deterministic on the CPU with a fixed thread count, so every way of running the
same study (in one go, killed and rerun, in shards then merged, in parallel processes) must
give the same summary.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifarlab.stored import StoredValueError
from cifarlab.studies import StudyError
from cifarlab.studies.ladder import load_ladder
from cifarlab.studies.runner import merge_studies, run_study
from cifarlab.studies.spec import ablation_study, parse_shard, seed_study, shard_runs
from cifarlab.studies.summary import collect, collect_training, summarize, to_markdown

# 1,600 training images / 32 = 50 steps per epoch: 0.2 epochs = 10 steps, checkpoints at 5 and 10.
TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}
TINY_SET = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
LADDER = """name = "tiny"
base = "seed-baseline"

[[steps]]
name = "baseline"
changes = {}

[[steps]]
name = "wd"
description = "weight decay"
changes = { "optim.weight_decay" = 1e-3, "optim.lr" = 3e-3 }
"""


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True, **kw
    )


@pytest.fixture(scope="module")
def ladder_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ladder") / "tiny.toml"
    path.write_text(LADDER, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def study(ladder_file):
    return ablation_study(load_ladder(ladder_file), [0, 1], overrides=TINY)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, study) -> Path:
    """The tiny study run in one go, in this process."""
    out = tmp_path_factory.mktemp("reference") / "study"
    run_study(study, out, data_dir="sample", log=lambda s: None)
    return out


def summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def test_study_directory_and_summary(reference, study):
    meta = json.loads((reference / "study.json").read_text())
    assert meta["kind"] == "ablation" and meta["name"] == "tiny" and meta["ladder"] == "tiny"
    assert meta["recipe"] == "seed-baseline" and meta["seeds"] == [0, 1]
    assert [s["name"] for s in meta["steps"]] == ["baseline", "wd"]
    assert meta["steps"][1]["changes"] == {"optim.weight_decay": 1e-3, "optim.lr": 3e-3}
    s = summary(reference)
    assert [r["step"] for r in s["rows"]] == ["baseline", "wd"] and s["missing"] == []
    for row in s["rows"]:
        accs = []
        for seed in (0, 1):
            run = reference / "runs" / row["step"] / f"seed{seed}"
            for name in ("metrics.json", "history.json", "checkpoint.pt", "recipe.toml"):
                assert (run / name).is_file(), (run, name)
            m = json.loads((run / "metrics.json").read_text())
            assert m["seed"] == seed and m["data"]["n_test"] == 500
            accs.append(m["test_accuracy"] * 100)
        assert row["values"] == accs and row["n"] == 2
        assert row["mean"] == pytest.approx(statistics.mean(accs))
        assert row["std"] == pytest.approx(statistics.stdev(accs))
        half = 12.706205 * statistics.stdev(accs) / 2**0.5  # t_{0.975,1} s / sqrt(2)
        assert row["ci95"] == pytest.approx([row["mean"] - half, row["mean"] + half], abs=1e-4)
        assert (row["min"], row["max"]) == (min(accs), max(accs))
    base, wd = s["rows"]
    assert base["diff_prev"] is None and base["diff_ref"] is None
    assert wd["diff_ref"] == "baseline"
    assert wd["diff_prev"] == pytest.approx(wd["mean"] - base["mean"])
    # the step's runs really used its changes (and the study's --set)
    recipe = (reference / "runs/wd/seed1/recipe.toml").read_text()
    assert "weight_decay = 0.001" in recipe and "lr = 0.003" in recipe and "epochs = 0.2" in recipe
    md = (reference / "summary.md").read_text()
    assert "| `wd` | 2 |" in md and "Welch" in md
    csv_lines = (reference / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,n,n_expected,mean,std,ci95_lo,ci95_hi,min,max")
    assert len(csv_lines) == 3
    for fig in ("accuracy_by_step.png", "curves_grid.png", "accuracies_strip.png"):
        assert (reference / fig).stat().st_size > 1000


def test_summary_holds_the_final_training_accuracy_and_loss(reference):
    s = summary(reference)
    for row in s["rows"]:
        accs, losses = [], []
        for seed in (0, 1):
            h = json.loads(
                (reference / "runs" / row["step"] / f"seed{seed}/history.json").read_text()
            )
            accs.append(h["train_acc"][-1] * 100)
            losses.append(h["train_loss"][-1])
        for key, vals in (("train_accuracy", accs), ("train_loss", losses)):
            block = row[key]
            assert block["values"] == vals and block["n"] == 2
            assert block["mean"] == pytest.approx(statistics.mean(vals))
            assert block["std"] == pytest.approx(statistics.stdev(vals))
            assert block["ci95"][0] <= block["mean"] <= block["ci95"][1]
    base, wd = s["rows"]
    for key in ("train_accuracy", "train_loss"):
        assert base[key]["diff_prev"] is None
        assert wd[key]["diff_prev"] == pytest.approx(wd[key]["mean"] - base[key]["mean"])
        lo, hi = wd[key]["diff_prev_ci95"]
        assert lo <= wd[key]["diff_prev"] <= hi
        assert wd[key]["diff_beyond_noise"] == (lo > 0 or hi < 0)
    md = (reference / "summary.md").read_text()
    training = md.split("## Final training accuracy (%) and loss")[1]
    mean, std = wd["train_accuracy"]["mean"], wd["train_accuracy"]["std"]
    assert f"| `wd` | 2 | {mean:.2f} ± {std:.2f} [" in training and "running mean" in training
    header, wd_line = (reference / "summary.csv").read_text().splitlines()[0:3:2]
    cells = dict(zip(header.split(","), wd_line.split(","), strict=True))
    assert float(cells["train_loss_mean"]) == pytest.approx(wd["train_loss"]["mean"])
    assert float(cells["train_accuracy_diff"]) == pytest.approx(wd["train_accuracy"]["diff_prev"])


def test_a_summary_from_metrics_alone_has_no_training_table(reference, study):
    # The report summarises a study from its runs' metrics: no training values, no table.
    results = collect(reference, study)
    s = summarize(study, results)
    assert all(r["train_accuracy"]["n"] == r["train_loss"]["n"] == 0 for r in s["rows"])
    assert "Final training" not in to_markdown(s)
    assert summarize(study, results, collect_training(reference, results)) == summary(reference)


def test_a_bad_training_value_in_a_history_is_one_line(tmp_path, reference, study):
    out = tmp_path / "study"
    shutil.copytree(reference, out)
    path = out / "runs/wd/seed1/history.json"
    h = json.loads(path.read_text())
    h["train_acc"][-1] = 1.5
    path.write_text(json.dumps(h))
    with pytest.raises(StoredValueError) as err:
        collect_training(out, collect(out, study))
    assert str(err.value).startswith(str(path)) and "train_acc" in str(err.value)
    assert "\n" not in str(err.value)
    path.write_text("{")
    with pytest.raises(StudyError, match="damaged history"):
        collect_training(out, collect(out, study))


@pytest.mark.slow
def test_killed_study_resumes_without_redoing_finished_runs(tmp_path, reference, ladder_file):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "cifarlab", "ablate", "--ladder", str(ladder_file)]
    cmd += ["--seeds", "2", *TINY_SET, "--data-dir", "sample", "--out", str(out), "--no-figures"]
    with open(tmp_path / "first.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if list(out.glob("runs/*/*/metrics.json")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    finished = sorted(out.glob("runs/*/*/metrics.json"))
    assert 1 <= len(finished) < 4
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in finished}
    assert not (out / "summary.json").exists()

    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for p in finished:
        step, seed = p.parent.parent.name, p.parent.name[len("seed") :]
        assert f"skipped {step} seed {seed}: finished" in r.stdout
        assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p]  # not redone
    assert f"{len(finished)} finished, {4 - len(finished)} to run" in r.stdout
    assert summary(out) == summary(reference)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, reference, study):
    out = tmp_path / "study"
    shutil.copytree(reference, out)
    run = out / "runs/wd/seed1"
    # Put the run back to step 5 of 10: its mid-run checkpoint, no metrics.
    (run / "metrics.json").unlink()
    os.replace(run / "checkpoint.prev.pt", run / "checkpoint.pt")
    others = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    lines: list[str] = []
    run_study(study, out, data_dir="sample", figures=False, log=lines.append)
    assert any("wd seed 1" in line and "resumed" in line for line in lines), lines
    assert (
        "resuming" in (run / "train.log").read_text()
        and "at step 5" in (run / "train.log").read_text()
    )
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert summary(out) == summary(reference)


def test_shards_merged_equal_the_whole_study(tmp_path, reference, study, ladder_file):
    assert parse_shard("0/2") == (0, 2) and parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("2/2", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(StudyError, match="--shard"):
            parse_shard(bad)
    runs = study.runs()
    parts = [shard_runs(runs, (i, 2)) for i in range(2)]
    assert sorted(r.index for p in parts for r in p) == list(range(len(runs)))
    for i in range(2):
        run_study(study, tmp_path / f"shard{i}", data_dir="sample", shard=(i, 2),
                  figures=False, log=lambda s: None)  # fmt: skip
    for i in range(2):
        done = {
            p.parent.relative_to(tmp_path / f"shard{i}")
            for p in (tmp_path / f"shard{i}").glob("runs/*/*/metrics.json")
        }
        assert done == {r.rel for r in parts[i]}
        assert len(summary(tmp_path / f"shard{i}")["missing"]) == 2
    r = cli(
        "studies",
        "merge",
        str(tmp_path / "shard0"),
        str(tmp_path / "shard1"),
        "-o",
        str(tmp_path / "merged"),
        "--no-figures",
    )
    assert r.returncode == 0, r.stderr
    assert "4 runs copied" in r.stdout
    assert summary(tmp_path / "merged") == summary(reference)
    for run in runs:
        assert (tmp_path / "merged" / run.rel / "checkpoint.pt").is_file()
    # shards of another study are refused, and so is rerunning another study into a directory
    other = ablation_study(load_ladder(ladder_file), [0, 2], overrides=TINY)
    with pytest.raises(StudyError, match="seeds differs"):
        run_study(other, tmp_path / "shard0", data_dir="sample", log=lambda s: None)
    shutil.copytree(tmp_path / "shard1", tmp_path / "odd")
    meta = json.loads((tmp_path / "odd/study.json").read_text())
    meta["overrides"]["train.epochs"] = 0.4
    (tmp_path / "odd/study.json").write_text(json.dumps(meta))
    with pytest.raises(StudyError, match=r"overrides\.train\.epochs differs"):
        merge_studies([tmp_path / "shard0", tmp_path / "odd"], tmp_path / "m2", log=lambda s: None)


@pytest.mark.slow
def test_seeds_cli_in_parallel_processes_matches_in_process_runs(tmp_path, reference):
    out = tmp_path / "seeds"
    r = cli("seeds", "--recipe", "seed-baseline", "-n", "2", *TINY_SET, "--data-dir", "sample",
            "--out", str(out), "--jobs", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 at a time" in r.stdout
    meta = json.loads((out / "study.json").read_text())
    assert meta["kind"] == "seeds" and meta["ladder"] is None and meta["seeds"] == [0, 1]
    (row,) = summary(out)["rows"]
    assert row["step"] == "seed-baseline" and row["n"] == 2
    assert sorted(p.name for p in (out / "runs/seed-baseline").iterdir()) == ["seed0", "seed1"]
    # the baseline step of the ladder is the same recipe, trained in this process
    assert row["values"] == summary(reference)["rows"][0]["values"]
    assert (out / "curves_grid.png").is_file() and (out / "accuracies_strip.png").is_file()
    with pytest.raises(StudyError, match="at least one seed"):
        seed_study("seed-baseline", [])
