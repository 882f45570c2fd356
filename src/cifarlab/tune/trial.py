"""One trial: an ordinary run directory, ``OUT/trials/<number>/``, trained with the trial's
values as overrides of the starting recipe, its validation accuracy reported to Optuna at
every evaluation point (the pruner may stop it there), its own record (trial.json); and a
killed trial's run taken over by its retry."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json
from cifarlab.errors import CifarlabError, TrainingError
from cifarlab.jobs.training import train_job
from cifarlab.rundir import RunDir, RunLock
from cifarlab.tune import TuneError
from cifarlab.tune.results import TuneDir, trial_record
from cifarlab.tune.spec import POSITIONS, TuneSpec, params_text
from cifarlab.tune.study import load_optuna, suggest


def run_trial(
    trial,
    spec: TuneSpec,
    out: Path,
    *,
    runtime: dict[str, Any],
    data_dir: str | None,
    worker: str,
    log: Callable[[str], None],
) -> float:
    """Train one trial in OUT/trials/<number> (a job of the shared runner,
    :func:`cifarlab.jobs.training.train_job`, with the trial's values and seed, and
    ``runtime``'s system.threads / system.device); its final validation accuracy (%)."""
    optuna = load_optuna()
    number = trial.number
    trial.set_user_attr("worker", worker)  # first: from here on a death of ours is found
    params = suggest(trial, spec.space)
    retried = list(_system_attrs(trial).get("retry_history", []))
    seed = trial.user_attrs.get("seed")  # a retry keeps its original's seed
    if seed is None:
        seed = int(spec.start["seed"]) + (number if spec.vary_seed else 0)
    trial.set_user_attr("seed", seed)
    where = TuneDir(out)
    run_dir = where.trial(number)
    from_step = take_over(where.trial(retried[-1]), run_dir) if retried else None
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "trial": number,
        "study": spec.study,
        "params": params,
        "seed": seed,
        "retry_of": retried[0] if retried else None,
        "continued_from_step": from_step,
    }
    write_record(run_dir, record, "running")
    how = ""
    if retried:
        how = f" (retry of trial {retried[-1]}" + (
            f", from its step-{from_step} checkpoint)" if from_step is not None else ", afresh)"
        )
    log(f"trial {number} started{how}: {params_text(params)}, seed {seed}")
    report = _Reporter(trial, optuna)
    try:
        if from_step is not None:  # the pruner sees what the killed trial had reported
            report.replay(run_dir)
        overrides = {**params, "seed": seed, **runtime}
        metrics = train_job(dict(spec.start), run_dir, overrides, data_dir, on_eval=report)
    except optuna.TrialPruned as exc:
        write_record(run_dir, {**record, "reason": str(exc)}, "pruned")
        log(f"trial {number} pruned {exc}")
        raise
    except CifarlabError as exc:
        trial.set_user_attr("error", str(exc))
        write_record(run_dir, {**record, "error": str(exc)}, "failed")
        log(f"trial {number} failed: {exc}")
        raise
    value = 100.0 * metrics["val_accuracy"]
    write_record(run_dir, {**record, "value": value}, "complete")
    log(f"trial {number} complete: validation accuracy {value:.2f}%")
    return value


def _system_attrs(trial) -> dict[str, Any]:
    """A running trial's system attributes (Optuna 5's Trial no longer shows them; its
    frozen copy in the study does): "retry_history" marks a retry of killed trials."""
    for t in trial.study.get_trials(deepcopy=False):
        if t.number == trial.number:
            return dict(t.system_attrs)
    return {}


class _Reporter:
    """train()'s on_eval hook: validation accuracy to Optuna; stop the run when pruned."""

    def __init__(self, trial, optuna) -> None:
        self.trial, self.optuna = trial, optuna

    def __call__(self, step: int, total: int, history: dict[str, list[Any]]) -> None:
        value = history["val_acc"][-1]
        if value is None:  # check_options refuses such a recipe; never measure the test set
            raise TuneError("trial has no validation split (data.val_fraction = 0)")
        position = round(POSITIONS * step / total) if total else POSITIONS
        self.trial.report(100.0 * value, position)
        if step < total and self.trial.should_prune():
            raise self.optuna.TrialPruned(
                f"at {position / 10:g}% of the run (step {step} of {total}): validation "
                f"accuracy {100 * value:.2f}%"
            )

    def replay(self, run_dir: Path) -> None:
        """Report the evaluation points a taken-over run already holds."""
        latest = RunDir(run_dir).latest_checkpoint()
        if latest is None:
            return
        payload = latest[1]
        history, total = payload["history"], int(payload.get("total_steps", 0))
        for i, step in enumerate(history["step"]):
            if step > 0:
                self(step, total, {k: v[: i + 1] for k, v in history.items()})


def take_over(old: Path, new: Path) -> int | None:
    """Move a killed trial's run directory to its retry's number, when it is here, holds a
    checkpoint and nobody trains in it; the checkpoint's step, or None (train afresh)."""
    if new.exists() or not RunDir(old).has_checkpoint():
        return None
    try:
        with RunLock(old):  # refused while a live process trains there
            os.replace(old, new)
    except (TrainingError, OSError):
        return None
    try:
        latest = RunDir(new).latest_checkpoint()
    except CifarlabError:
        return None  # both checkpoints damaged: train() says so, and the trial fails
    return int(latest[1]["step"]) if latest else None


def write_record(run_dir: Path, record: dict[str, Any], state: str) -> None:
    """The trial's trial.json in its run directory: ``record`` and how it stands."""
    write_json(trial_record(run_dir), {**record, "state": state})
