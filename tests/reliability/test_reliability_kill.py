"""SIGKILL at ten moments of a training run, four of them inside a checkpoint write.

After each kill the last checkpoint must load, and resuming must finish with weights,
metrics and history identical to the uninterrupted reference run.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from relhelpers import (
    CHECKPOINT_EVERY,
    SAME_AS_REFERENCE,
    TOTAL_STEPS,
    run_cli,
    same_result,
    start_cli,
    temp_files,
    train_argv,
)

from cifarlab.rundir import load_checkpoint

# The moments inside save_checkpoint where the process is held and killed: after
# torch.save wrote the temp file (unflushed), before checkpoint.prev.pt is updated,
# before the temp file is renamed over checkpoint.pt, before checkpoint.json
# (tests/checkpoint_pause.py holds it there).
PHASES = ("write", "rotate", "replace", "summary")
SEED = int(os.environ.get("CIFARLAB_RELIABILITY_SEED", "8"))


def _completed_step(run) -> int | None:
    """The step checkpoint.json reports: a checkpoint at least this new was complete."""
    try:
        return int(json.loads((run / "checkpoint.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def _plan(rng: random.Random) -> list[dict]:
    checkpoint_steps = list(range(2 * CHECKPOINT_EVERY, TOTAL_STEPS, CHECKPOINT_EVERY))
    plan = [{"phase": p, "step": rng.choice(checkpoint_steps)} for p in PHASES]
    for _ in range(6):
        plan.append({"after_step": rng.randrange(0, TOTAL_STEPS - 8), "delay": rng.uniform(0, 0.4)})
    # Two victims are fresh `python -m cifarlab` interpreters, the others forks of this one.
    for i, spec in enumerate(plan):
        spec["fork"] = i not in (1, 6)
    return plan


def _phase_seen(spec: dict, log: str, temps: list[str], completed: int | None) -> bool:
    """Whether the kill was observed to land in its phase: the pause announced, and the
    run's files as that phase leaves them (the temp checkpoint beside checkpoint.pt during
    write, rotate and replace; after the rename, checkpoint.json still one checkpoint old)."""
    if f"paused at checkpoint {spec['phase']} step {spec['step']}" not in log:
        return False
    if spec["phase"] == "summary":
        return not temps and completed == spec["step"] - CHECKPOINT_EVERY
    return any(t.startswith(".checkpoint.pt.tmp-") for t in temps)


@pytest.mark.slow
def test_sigkill_at_ten_moments_then_resume_is_bit_identical(tmp_path, reference_run, ledger):
    plan = _plan(random.Random(SEED))
    phases_seen: set[str] = set()
    for i, spec in enumerate(plan):
        run, log = tmp_path / f"kill{i}", tmp_path / f"kill{i}.log"
        if "phase" in spec:
            name = (
                f"kill {i}: inside checkpoint write, phase {spec['phase']!r} of step {spec['step']}"
            )
        else:
            name = f"kill {i}: {spec['delay']:.2f} s after checkpoint.json reached step {spec['after_step']}"
        name += "" if spec["fork"] else " (fresh interpreter)"
        with ledger.case("kill", name) as case:
            if "phase" in spec:
                pause = f"{spec['phase']}@{spec['step']}"
                child = start_cli(train_argv(run), log, fork=spec["fork"], pause=pause)
                child.wait_for_output(f"paused at checkpoint {spec['phase']} step {spec['step']}")
            else:
                child = start_cli(train_argv(run), log, fork=spec["fork"])
                deadline = time.time() + 240
                while spec["after_step"] and (_completed_step(run) or 0) < spec["after_step"]:
                    assert child.poll() is None, child.output()[-2000:]
                    assert time.time() < deadline, "the run made no progress"
                    time.sleep(0.005)
                time.sleep(spec["delay"])
            completed = _completed_step(run)
            temps = temp_files(run) if run.exists() else []
            child.kill()
            assert child.returncode == -9, f"the run ended before the kill ({child.returncode})"
            assert not (run / "metrics.json").exists()
            if "phase" in spec and _phase_seen(spec, child.output(), temps, completed):
                phases_seen.add(spec["phase"])

            # The last checkpoint loads, and is at least as new as checkpoint.json says.
            resumed_from = None
            if completed is not None or (run / "checkpoint.pt").exists():
                if case.check(not (run / "checkpoint.pt").exists(), "checkpoint.pt kept"):
                    raise AssertionError("checkpoint.pt is missing after the kill")
                resumed_from = load_checkpoint(run / "checkpoint.pt")["step"]
                older = completed is not None and resumed_from < completed
                if case.check(older, "checkpoint.pt at least as new as checkpoint.json"):
                    raise AssertionError(f"checkpoint at step {resumed_from} < {completed}")
                argv = ["train", "--resume", str(run), "--data-dir", "sample", "--no-progress"]
            else:  # killed before the first checkpoint: starting again is the resume
                argv = train_argv(run)
            res = run_cli(argv, tmp_path / f"resume{i}.log")
            assert res.returncode == 0, res.output()[-3000:]
            if resumed_from is not None:
                assert f"at step {resumed_from}" in res.output()
            assert temp_files(run) == [], "temp files of the killed run were left behind"
            if case.check(not same_result(run, reference_run), SAME_AS_REFERENCE):
                raise AssertionError("the resumed run differs from the uninterrupted one")
            where = (
                (
                    f"phase {spec['phase']} seen at the kill"
                    if spec["phase"] in phases_seen
                    else "phase NOT seen at the kill"
                )
                if "phase" in spec
                else ("a temp file present" if temps else "no temp file present")
            )
            case.note = f"last complete checkpoint: step {resumed_from}; {where}"
    # Each phase of the checkpoint write was really hit by one kill, as observed at the kill.
    assert phases_seen == set(PHASES), f"kills observed inside phases {sorted(phases_seen)}"
