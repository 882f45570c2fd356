"""Studies: definition, runs, parallel and resumable execution, shards and merging.

A study directory::

    STUDY/study.json                 what the study is (kind, name, ladder, recipe, seeds, steps)
    STUDY/runs/<step>/seed<k>/       one `cifarlab train` run directory per (step, seed)
    STUDY/summary.{json,csv,md}      the table (cifarlab.studies.summary)
    STUDY/accuracy_by_step.png, curves_grid.png, accuracies_strip.png
    STUDY/study.log                  one line per run started, skipped, finished or failed

Runs are ordered seed-major (every step of seed 0, then of seed 1, ...), so a study stopped
early already has every step at least once. A run whose ``metrics.json`` exists is finished
and skipped; any other run is trained with ``train(resume="auto")``, which resumes from its
checkpoint when it has one. Training is deterministic on the CPU, so a study that was killed
and rerun ends with exactly the summary of one that was not.

``--shard i/n`` (0-based: i = 0..n-1) keeps the runs whose index in that order satisfies
``index % n == i``; shards may write into one directory or into separate ones that
:func:`merge_studies` combines.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from cifarlab.data.tensors import load_data_for
from cifarlab.errors import CifarlabError
from cifarlab.recipe import load_recipe
from cifarlab.rundir import CHECKPOINT, METRICS, TRAIN_LOG, RunDir
from cifarlab.runtime import resolve_device
from cifarlab.studies import StudyError
from cifarlab.studies.spec import (
    STUDY_JSON,
    STUDY_LOG,
    StudySpec,
    first_difference,
    init_study_dir,
    is_finished,
    read_study,
    shard_runs,
)
from cifarlab.studies.summary import summarize_study
from cifarlab.train.loop import train


class _StudyLog:
    """Log lines to the console callback and, appended, to STUDY/study.log."""

    def __init__(self, study_dir: Path, log: Callable[[str], None]) -> None:
        self.path = study_dir / STUDY_LOG
        self.log = log

    def __call__(self, line: str) -> None:
        self.log(line)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {line}\n")


# --------------------------------------------------------------------------- running


def cpu_count() -> int:
    """CPUs this process may use (a SLURM or taskset limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_study(
    study: StudySpec,
    study_dir: str | Path,
    *,
    jobs: int = 1,
    device: str | None = None,
    data_dir: str | None = None,
    shard: tuple[int, int] | None = None,
    figures: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or finish) ``study`` in ``study_dir`` and return its summary.

    Finished runs are skipped, interrupted ones resumed from their checkpoints. On the CPU,
    ``jobs`` runs go at a time, each in its own process with cpu_count // jobs torch threads
    (unless the study sets ``system.threads``); on a GPU one run at a time. Failed runs are
    reported after the others finished (StudyError); rerunning the command retries them.
    """

    if jobs < 1:
        raise StudyError(f"--jobs {jobs}: must be >= 1")
    study_dir = Path(study_dir)
    init_study_dir(study, study_dir)
    slog = _StudyLog(study_dir, log)

    runtime: dict[str, Any] = {}
    if device is not None:
        runtime["system.device"] = device
    base = load_recipe(study.recipe, {**study.overrides, **runtime})
    dev = resolve_device(base.system.device)
    if dev.type != "cpu":
        if jobs > 1:
            slog(f"device {dev}: one run at a time (--jobs {jobs} applies to the CPU only)")
        jobs = 1
    elif "system.threads" not in study.overrides:
        runtime["system.threads"] = max(cpu_count() // jobs, 1)

    runs = shard_runs(study.runs(), shard)
    pending = []
    for run in runs:
        if is_finished(study_dir / run.rel):
            slog(f"skipped {run.step} seed {run.seed}: finished ({run.rel / METRICS})")
        else:
            pending.append(run)
    where = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    slog(
        f"study {study.name}: {where}{len(runs)} runs, {len(runs) - len(pending)} finished, "
        f"{len(pending)} to run on {dev}" + (f", {jobs} at a time" if jobs > 1 else "")
    )

    tasks = [
        {
            "study_dir": str(study_dir),
            "rel": str(run.rel),
            "recipe": study.recipe,
            "overrides": {**study.run_overrides(study.step(run.step), run.seed), **runtime},
            "data_dir": data_dir,
            "step": run.step,
            "seed": run.seed,
        }
        for run in pending
    ]
    failures: list[dict[str, Any]] = []

    def report(done: int, result: dict[str, Any]) -> None:
        head = f"[{done}/{len(tasks)}] {result['step']} seed {result['seed']}"
        if result.get("error"):
            failures.append(result)
            slog(f"{head}: FAILED: {result['error']}")
        else:
            slog(
                f"{head}: test {result['test_accuracy'] * 100:.2f}% ({result['status']}, "
                f"{result['wall_s']:.0f} s)"
            )

    if jobs == 1 or len(tasks) <= 1:
        for k, task in enumerate(tasks, 1):
            slog(f"start {task['step']} seed {task['seed']}: {task['rel']}")
            report(k, _run_one(task))
    else:
        _run_pool(tasks, min(jobs, len(tasks)), slog, report)

    summary = summarize_study(study_dir, figures=figures, log=slog)
    if failures:
        first = failures[0]
        raise StudyError(
            f"{len(failures)} of {len(tasks)} runs failed (first: {first['step']} seed "
            f"{first['seed']}: {first['error']}); see {study_dir / STUDY_LOG}; rerun to retry"
        )
    return summary


def _run_pool(
    tasks: list[dict[str, Any]],
    workers: int,
    slog: Callable[[str], None],
    report: Callable[[int, dict[str, Any]], None],
) -> None:
    """``workers`` spawned processes, each training one run at a time."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
    )
    try:
        queue = list(tasks)
        running: dict[Any, dict[str, Any]] = {}
        done = 0
        # Submit no more than there are workers, so "start" lines are true and a stop loses little.
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop(0)
                slog(f"start {task['step']} seed {task['seed']}: {task['rel']}")
                running[pool.submit(_run_one, task)] = task
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                running.pop(fut)
                done += 1
                report(done, fut.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def die_with_parent(parent_pid: int) -> None:
    """Die with the parent: a study or search killed with SIGKILL must not leave runs training."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


# Data loaded once per process, by source: a pool worker trains many runs on the same data.
_DATA: dict[str, Any] = {}


def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or finish) one run; errors a user can cause come back as text."""

    start = time.perf_counter()
    run_dir = Path(task["study_dir"]) / task["rel"]
    out = {"step": task["step"], "seed": task["seed"], "rel": task["rel"]}
    resumed = RunDir(run_dir).has_checkpoint()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / TRAIN_LOG, "a", encoding="utf-8") as logf:

            def log(line: str) -> None:
                logf.write(line + "\n")
                logf.flush()

            recipe = load_recipe(task["recipe"], task["overrides"])
            source = task["data_dir"] if task["data_dir"] is not None else recipe.data.source
            if source not in _DATA:
                _DATA[source] = load_data_for(recipe.data.source, task["data_dir"], log)
            metrics = train(
                task["recipe"],
                out_dir=run_dir,
                data=_DATA[source],
                overrides=task["overrides"],
                resume="auto",
                progress=False,
                log=log,
            )
    except CifarlabError as exc:
        return {**out, "error": str(exc), "wall_s": time.perf_counter() - start}
    return {
        **out,
        "test_accuracy": metrics["test_accuracy"],
        "status": "resumed" if resumed else "trained",
        "wall_s": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- merging


def merge_studies(
    dirs: list[str | Path],
    out: str | Path,
    *,
    figures: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Combine the runs of study directories (e.g. shards) into ``out`` and summarize it.

    Every input must hold the same study.json (so must ``out``, if it has one). A finished
    run is copied when ``out`` lacks it; an unfinished one only when no input finished it and
    ``out`` has nothing for it. Copies go through a temporary folder and a rename.
    """

    if not dirs:
        raise StudyError("studies merge: name at least one study directory")
    out = Path(out)
    studies = [(Path(d), read_study(d)) for d in dirs]
    first_dir, study = studies[0]
    for d, other in studies[1:]:
        field_name = first_difference(study.to_json(), other.to_json())
        if field_name is not None:
            raise StudyError(
                f"{d / STUDY_JSON}: another study than {first_dir / STUDY_JSON} "
                f"({field_name} differs); merge only shards of one study"
            )
    init_study_dir(study, out)
    copied = 0
    for run in study.runs():
        dest = out / run.rel
        if is_finished(dest):
            continue
        sources = [d / run.rel for d, _ in studies if (d / run.rel).resolve() != dest.resolve()]
        finished = [s for s in sources if is_finished(s)]
        partial = [s for s in sources if s.is_dir() and (s / CHECKPOINT).exists()]
        if finished:
            src = finished[0]
        elif partial and not dest.exists():
            src = partial[0]
        else:
            continue
        _copy_run(src, dest)
        copied += 1
    log(f"merged {len(dirs)} studies into {out}: {copied} runs copied")
    return summarize_study(out, figures=figures, log=log)


def _copy_run(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.merge-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".lock", ".*.tmp-*"))
    if dest.exists():  # an unfinished copy, superseded by a finished run of the same seed
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
