"""Two workers share one study on a real PostgreSQL server (a throwaway cluster, see
conftest.postgres_url); one is killed mid-trial, and the other finishes the study with that
trial failed, retried once, and nothing counted twice.

The workers write separate tune directories, as on two machines: the survivor cannot see the
dead worker's lock, so Optuna's heartbeats (--heartbeat 1: silent for 2 s = stale) find the
killed trial.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from tunehelpers import start_until_paused, tiny_set


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_and_a_killed_one_leaves_it_consistent(
    tmp_path, postgres_url, space_file
):
    # 10 steps a trial (0.2 epochs), checkpoints at steps 5 and 10.
    cmd = [sys.executable, "-m", "cifarlab", "tune", "--recipe", "seed-baseline"]
    cmd += ["--space", str(space_file), *tiny_set({"train.epochs": 0.2}), "--pruner", "none"]
    # trust authentication ignores the password: here only to show that it is never written.
    url = postgres_url.replace("postgres@", "postgres:s3cret@", 1)
    cmd += ["--trials", "4", "--storage", url, "--study", "shared", "--heartbeat", "1"]
    cmd += ["--data-dir", "sample"]
    # Worker a creates the study and starts trial 0; it stops just after its step-5
    # checkpoint, alive (its heartbeats go on) while worker b joins.
    a, lines = start_until_paused([*cmd, "--out", str(tmp_path / "a")], "summary@5")
    b = None
    try:
        assert any("trial 0 started" in x for x in lines), "".join(lines)
        b = subprocess.Popen(
            [*cmd, "--out", str(tmp_path / "b")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(1)
        a.send_signal(signal.SIGKILL)  # mid-trial
        a.wait(timeout=60)
        out_b, _ = b.communicate(timeout=600)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    assert b.returncode == 0, out_b

    # The URL names no driver: SQLAlchemy's default (psycopg 3), or the one the tune extra
    # installs (psycopg2), said in one line.
    if importlib.util.find_spec("psycopg") is None:
        assert "postgresql:// is opened as postgresql+psycopg2://" in out_b
    study = optuna.load_study(study_name="shared", storage=_installed(postgres_url))
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.RUNNING) == 0 and states.count(TrialState.WAITING) == 0
    assert states.count(TrialState.COMPLETE) == 4  # N finished, none lost
    assert states.count(TrialState.FAIL) == 1
    killed = next(t for t in trials if t.state == TrialState.FAIL)
    assert killed.number == 0 and "error" not in killed.user_attrs
    retries = [t for t in trials if t.system_attrs.get("retry_history") == [0]]
    assert len(retries) == 1  # retried exactly once
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"]
    assert f"trial {retry.number} started (retry of trial 0, afresh)" in out_b

    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["counts"]["complete"] == 4 and summary["counts"]["failed_killed"] == 1
    assert summary["storage"].startswith("postgresql://postgres:***@/postgres?")
    for worker in ("a", "b"):
        for name in ("tune.json", "summary.json", "tune.log"):
            path = tmp_path / worker / name
            assert not path.exists() or "s3cret" not in path.read_text()
    assert "s3cret" not in out_b
    ran_b = {t["number"] for t in summary["trials"] if t["run"]}
    assert ran_b == {t.number for t in trials if t.state == TrialState.COMPLETE}
    # Worker a's run of trial 0 stays as the kill left it: a valid step-5 checkpoint.
    assert (tmp_path / "a" / "trials/0000/checkpoint.pt").is_file()
    record = json.loads((tmp_path / "a" / "trials/0000/trial.json").read_text())
    assert record["state"] == "running" and (tmp_path / "a" / "trials/0000/.lock").exists()
    # Worker a's command again, on its machine: the study is done, and the record of the
    # trial it was killed in now says how that trial ended; the stale run lock is gone.
    again = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 of 4 trials finished" in again.stdout and " started" not in again.stdout
    record = json.loads((tmp_path / "a" / "trials/0000/trial.json").read_text())
    assert record["state"] == "killed" and record["trial"] == 0
    assert f"retried as trial {retry.number}" in record["reason"]
    assert not (tmp_path / "a" / "trials/0000/.lock").exists()


def _installed(url: str) -> str:
    """The URL with a driver this Python has, for this test's own look into the study."""
    if importlib.util.find_spec("psycopg") is None:
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return url
