"""The command: ``cifarlab tune``, an Optuna study over a starting recipe and a search space.

This module starts (or resumes, or joins) a search and runs its workers; the pieces are:
the definition (:mod:`~cifarlab.tune.spec`), the Optuna adapter (:mod:`~cifarlab.tune.study`),
one trial (:mod:`~cifarlab.tune.trial`), the workers (:mod:`~cifarlab.tune.worker`), the
summary writer (:mod:`~cifarlab.tune.summary`), the directory's owner
(:mod:`~cifarlab.tune.results`); processes and the jobs/threads/device policy are the shared
job runner's (:mod:`cifarlab.jobs`).

Every trial is an ordinary run directory, ``OUT/trials/<number>/``, trained by
:func:`cifarlab.train.loop.train` with the sampled fields applied as overrides of the starting
recipe (the recipe with the command's ``--set``). Trial 0 trains the starting recipe's own
values (those inside the space), so the search is measured against where it started.

**Objective.** Validation accuracy (%) at the run's last evaluation point: the held-out part
of the training set (``data.val_fraction``), never the test set, which only the
confirmation (:mod:`cifarlab.tune.confirm`) touches. At every evaluation point the loop hands
the validation accuracy to Optuna (``trial.report``), at the position in the run in per mille
(500 = halfway), so that runs of different lengths and batch sizes compare at the same
fraction of their training; the pruner may then stop the trial. A pruned run stops just
after that point's checkpoint: its lock is released, its checkpoint is valid (it could be
resumed with ``cifarlab train --resume``), and its ``trial.json`` says ``pruned``.

**Storage and resume.** The study lives in a database: by default a SQLite file,
``OUT/study.db``; ``--storage postgresql://...`` shares one study between processes on many
machines (:mod:`cifarlab.tune.storage` resolves the URL). A start that fails (a storage that
does not open) leaves nothing behind. Rerunning the command resumes the study: ``--trials N``
counts the trials already finished; ``--timeout S`` starts no trial after S seconds (those
running then finish). A trial counts once it is complete, pruned, or failed with an error (an
error in a trial, e.g. a non-finite loss, is its result, and rerunning it would fail again).

**Killed trials are failed and retried** (at most ``MAX_RETRY`` times per trial). A worker
process holds ``OUT/workers/<id>.lock`` (flock, released by the kernel when the process dies)
and tags each trial it runs with its id; before each trial, a worker fails every RUNNING
trial whose worker's lock it can take, at once. A trial whose worker is on another machine
is found by Optuna's heartbeats instead (``--heartbeat S``: a RUNNING trial silent for 2 S
seconds is failed). Either way the failed trial is re-enqueued with the same parameters and
seed as a new trial, which continues from the killed trial's last checkpoint when that run
directory is in this OUT (it is moved to the new trial's number), and starts afresh
otherwise. Training is deterministic on the CPU, so the retry ends exactly as the killed
trial would have. A killed trial does not count toward N; its retry does, once. A killed
trial's own ``trial.json`` (when its run directory is still in this OUT) then says "killed",
why, and which trial retries it.

**Many workers.** ``--jobs J`` starts J worker processes on this machine (cpu_count // J
torch threads each); the same command on other machines with the same ``--storage`` and
``--study`` adds workers there. A worker starts a trial only while the finished and running
trials together are fewer than N, so the study ends with N finished trials, or a few more
(at most one per other worker) when several workers start their last trial at once. A
worker with nothing left to start waits for the running trials of others (or for them to
be found dead) before it stops.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json
from cifarlab.jobs.directory import JobLog, start_dir
from cifarlab.jobs.pool import plan_jobs, run_jobs
from cifarlab.recipe import first_difference
from cifarlab.tune import TuneError
from cifarlab.tune.results import BEST_RECIPE, STUDY_DB, TUNE_JSON, TUNE_LOG, TuneDir
from cifarlab.tune.spec import (
    HEARTBEAT_S,
    TuneSpec,
    check_options,
    check_run_options,
    params_text,
    write_start_recipe,
)
from cifarlab.tune.storage import resolve_storage
from cifarlab.tune.study import count, open_study
from cifarlab.tune.summary import write_summary
from cifarlab.tune.worker import WorkerConfig, deadline_after, timed_out, work, work_job


def run_tune(
    spec: TuneSpec,
    out: str | Path,
    *,
    trials: int,
    jobs: int = 1,
    storage: str | None = None,
    heartbeat: int = HEARTBEAT_S,
    timeout: float | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume, or join) the search until ``trials`` trials are finished, or until
    ``timeout`` seconds have passed (no trial starts after it); its summary."""
    out = Path(out)
    deadline = deadline_after(timeout)
    check_run_options(trials, jobs, heartbeat, timeout)
    check_options(spec)
    store = resolve_storage(out, storage)
    spec.storage = store.shown if store.given else None
    with tune_dir_start(spec, out):  # a start that fails leaves nothing behind
        study = open_study(spec, store, heartbeat)  # before the workers: one creates it
    tlog = JobLog(TuneDir(out).file(TUNE_LOG), log)
    if store.note:
        tlog(store.note)

    plan = plan_jobs(
        jobs,
        device,
        spec.start["system"]["device"],
        threads_fixed="system.threads" in spec.overrides,
        noun="trial",
        log=tlog,
    )
    c = count(study.get_trials(deepcopy=False))
    tlog(
        f"study {spec.study} ({spec.storage or STUDY_DB}): {c.finished} of {trials} trials "
        f"finished ({c.complete} complete, {c.pruned} pruned, {c.errors} failed), "
        f"{c.running} running elsewhere; {plan.jobs} worker(s) on {plan.device}"
    )
    cfg = WorkerConfig(spec, out, store, trials, heartbeat, data_dir, plan.runtime, deadline)
    if plan.jobs == 1:
        work(cfg, log)
    else:
        _run_workers(cfg, plan.jobs, tlog)
    c = count(study.get_trials(deepcopy=False))
    stopped = "timeout" if timed_out(cfg) and c.finished < trials else None
    summary = write_summary(study, spec, out, trials, stopped=stopped)
    best = summary["best"]
    c = summary["counts"]
    tlog(
        (
            f"study {spec.study}: stopped on --timeout {timeout:g} s with {c['finished']} of "
            f"{trials} trials finished (rerun the command to go on): "
            if stopped
            else f"study {spec.study}: "
        )
        + f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
        + (
            f"; best: trial {best['number']}, validation accuracy {best['value']:.2f}% "
            f"({params_text(best['params'])}) -> {TuneDir(out).file(BEST_RECIPE)}"
            if best
            else "; no complete trial yet"
        )
    )
    return summary


def _run_workers(cfg: WorkerConfig, jobs: int, log: Callable[[str], None]) -> None:
    """``jobs`` worker processes, each running trials until the study has N; a worker that
    fails or dies leaves the others going (its trials are found and retried by them), and
    the command fails once all have ended."""
    failed: list[str] = []

    def ended(_cfg: WorkerConfig, result: dict[str, Any]) -> None:
        if result.get("error"):
            failed.append(result["error"])
            log(f"a worker failed: {result['error']}")

    run_jobs([cfg] * jobs, work_job, jobs, on_start=lambda _cfg: None, on_done=ended)
    if failed:
        raise TuneError(
            f"{len(failed)} of {jobs} workers failed (first: {failed[0]}); "
            f"see {TuneDir(cfg.out).file(TUNE_LOG)}; rerun the command to go on"
        )


@contextlib.contextmanager
def tune_dir_start(spec: TuneSpec, out: Path) -> Iterator[None]:
    """Start (or resume) a tune directory around the block that opens the study.

    A tune.json already there must be this very search (else refused, nothing touched). A new
    directory is made before the block (the default SQLite study lives in it) and gets
    tune.json, start.toml and trials/ after it; when the block fails (a storage that does not
    open, another search in the study), everything the start made is removed again, so the
    corrected command starts afresh (:func:`cifarlab.jobs.directory.start_dir`)."""
    where = TuneDir(out)

    def write() -> None:
        where.trials().mkdir(exist_ok=True)
        write_start_recipe(spec, out)
        write_json(where.file(TUNE_JSON), spec.to_json())

    with start_dir(
        where.file(TUNE_JSON),
        spec.to_json(),
        what="search",
        error=TuneError,
        read=_read_definition,
        differ=first_difference,
        write=write,
    ):
        yield


def _read_definition(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TuneError(f"{path}: cannot read ({exc}); fix or remove the file") from None
