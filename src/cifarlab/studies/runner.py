"""Studies: runs, parallel and resumable execution, shards and merging.

The study directory's layout is its owner's (:mod:`cifarlab.studies.studydir`); the runs
go through the job runner that searches use too (:mod:`cifarlab.jobs`).

Runs are ordered seed-major (every step of seed 0, then of seed 1, ...), so a study stopped
early already has every step at least once. A run whose ``metrics.json`` exists is finished
and skipped; any other run is trained with ``train(resume="auto")``, which resumes from its
checkpoint when it has one. Training is deterministic on the CPU, so a study that was killed
and rerun ends with exactly the summary of one that was not. A run that fails, or whose
worker process dies, is reported after the others finished (StudyError); rerunning the
command retries it.

``--shard i/n`` (0-based: i = 0..n-1) keeps the runs whose index in that order satisfies
``index % n == i``; shards may write into one directory or into separate ones that
:func:`merge_studies` combines.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.jobs.directory import JobLog
from cifarlab.jobs.pool import check_jobs, plan_jobs, run_jobs
from cifarlab.jobs.training import train_job
from cifarlab.recipe import first_difference, load_recipe
from cifarlab.rundir import RunDir
from cifarlab.studies import StudyError
from cifarlab.studies.spec import (
    StudySpec,
    init_study_dir,
    is_finished,
    read_study,
    shard_runs,
)
from cifarlab.studies.studydir import STUDY_JSON, STUDY_LOG, StudyDir
from cifarlab.studies.summary import summarize_study

# --------------------------------------------------------------------------- running


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
    (unless the study sets ``system.threads``); on a GPU one run at a time (the policy of
    :func:`cifarlab.jobs.pool.plan_jobs`). Failed runs are reported after the others
    finished (StudyError); rerunning the command retries them.
    """

    check_jobs(jobs, StudyError)
    where = StudyDir(study_dir)
    init_study_dir(study, where.path)
    slog = JobLog(where.file(STUDY_LOG), log)

    plan = plan_jobs(
        jobs,
        device,
        load_recipe(study.recipe, study.overrides).system.device,
        threads_fixed="system.threads" in study.overrides,
        noun="run",
        log=slog,
    )
    runs = shard_runs(study.runs(), shard)
    pending = []
    for run in runs:
        if is_finished(where.run(run.step, run.seed)):
            slog(f"skipped {run.step} seed {run.seed}: finished ({RunDir(run.rel).metrics_path})")
        else:
            pending.append(run)
    part = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    slog(
        f"study {study.name}: {part}{len(runs)} runs, {len(runs) - len(pending)} finished, "
        f"{len(pending)} to run on {plan.device}"
        + (f", {plan.jobs} at a time" if plan.jobs > 1 else "")
    )

    tasks = [
        {
            "run_dir": str(where.run(run.step, run.seed)),
            "rel": str(run.rel),
            "recipe": study.recipe,
            "overrides": {
                **study.run_overrides(study.step(run.step), run.seed),
                **plan.runtime,
            },
            "data_dir": data_dir,
            "step": run.step,
            "seed": run.seed,
        }
        for run in pending
    ]
    failures: list[dict[str, Any]] = []
    done = 0

    def started(task: dict[str, Any]) -> None:
        slog(f"start {task['step']} seed {task['seed']}: {task['rel']}")

    def report(task: dict[str, Any], result: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        head = f"[{done}/{len(tasks)}] {task['step']} seed {task['seed']}"
        if result.get("error"):
            failures.append({**task, **result})
            slog(f"{head}: FAILED: {result['error']}")
        else:
            slog(
                f"{head}: test {result['test_accuracy'] * 100:.2f}% ({result['status']}, "
                f"{result['wall_s']:.0f} s)"
            )

    run_jobs(tasks, _run_one, plan.jobs, on_start=started, on_done=report)

    summary = summarize_study(where.path, figures=figures, log=slog)
    if failures:
        first = failures[0]
        raise StudyError(
            f"{len(failures)} of {len(tasks)} runs failed (first: {first['step']} seed "
            f"{first['seed']}: {first['error']}); see {where.file(STUDY_LOG)}; rerun to retry"
        )
    return summary


def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or finish) one run (a job of :func:`cifarlab.jobs.pool.run_jobs`,
    which turns an error a user can cause into the job's ``{"error": ...}``)."""
    start = time.perf_counter()
    run_dir = Path(task["run_dir"])
    resumed = RunDir(run_dir).has_checkpoint()
    metrics = train_job(task["recipe"], run_dir, task["overrides"], task["data_dir"])
    return {
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
            mine, theirs = StudyDir(d).file(STUDY_JSON), StudyDir(first_dir).file(STUDY_JSON)
            raise StudyError(
                f"{mine}: another study than {theirs} ({field_name} differs); merge only "
                f"shards of one study"
            )
    init_study_dir(study, out)
    copied = 0
    for run in study.runs():
        dest = StudyDir(out).run(run.step, run.seed)
        if is_finished(dest):
            continue
        sources = [StudyDir(d).run(run.step, run.seed) for d, _ in studies]
        sources = [s for s in sources if s.resolve() != dest.resolve()]
        finished = [s for s in sources if is_finished(s)]
        partial = [s for s in sources if s.is_dir() and RunDir(s).checkpoint_path.exists()]
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
    shutil.copytree(src, tmp, ignore=lambda _, names: [n for n in names if RunDir.is_transient(n)])
    if dest.exists():  # an unfinished copy, superseded by a finished run of the same seed
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
