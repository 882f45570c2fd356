"""Search workers: a worker process's lock, how a dead worker's trials are found and
retried, and the loop that runs trials until the study has N.

A worker process holds ``OUT/workers/<id>.lock`` (flock, released by the kernel when the
process dies) and tags each trial it runs with its id; before each trial, a worker fails
every RUNNING trial whose worker's lock it can take. ``--jobs J`` runs J of these loops as
jobs of the shared runner (:mod:`cifarlab.jobs.pool`), one per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.atomic import read_json
from cifarlab.errors import CifarlabError, TrainingError
from cifarlab.jobs.directory import JobLog
from cifarlab.rundir import RunLock
from cifarlab.tune import TuneError
from cifarlab.tune.results import TUNE_LOG, TuneDir, trial_record
from cifarlab.tune.spec import HEARTBEAT_S, TuneSpec
from cifarlab.tune.storage import Storage
from cifarlab.tune.study import (
    MAX_RETRY,
    count,
    fail_stale_trials,
    load_optuna,
    open_study,
    retry,
)
from cifarlab.tune.summary import write_summary
from cifarlab.tune.trial import run_trial, write_record


class WorkerLock:
    """``OUT/workers/<id>.lock``, flock-held while this worker process lives.

    The kernel drops the lock when the process dies, however it dies; a worker that can take
    another's lock knows that worker is gone, and fails the trials it left RUNNING. The file
    is removed when the worker ends normally (and by whoever finds it dead).
    """

    def __init__(self, out: Path) -> None:
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
        self.id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = TuneDir(out).worker_lock(self.id)
        self._fd: int | None = None

    def __enter__(self) -> WorkerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def worker_is_dead(out: Path, worker: str) -> bool:
    """True when ``worker``'s lock file is in this OUT and nobody holds it (its process is
    gone); False when it is held, or is not here (a worker on another machine: heartbeats
    tell). A lock found dead is removed."""
    if not re.fullmatch(r"[A-Za-z0-9.-]+", worker or ""):
        return False
    path = TuneDir(out).worker_lock(worker)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    with contextlib.suppress(OSError):
        path.unlink()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return True


def fail_dead_trials(study, out: Path, log: Callable[[str], None], own: str = "") -> None:
    """Fail (and retry) the RUNNING trials whose worker's lock in OUT is free: their process
    died. Only the worker whose ``tell`` makes the change retries the trial."""
    optuna = load_optuna()
    from optuna.trial import TrialState

    dead: dict[str, bool] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if not worker or worker == own:
            continue
        if worker not in dead:
            dead[worker] = worker_is_dead(out, worker)
        if not dead[worker]:
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # finished meanwhile, or another worker failed it first
        log(f"trial {t.number}: its worker {worker} is gone (killed); failed, to be retried")
        retry(study, t)


@dataclass
class WorkerConfig:
    """What one worker process needs (picklable: --jobs starts workers with it)."""

    spec: TuneSpec
    out: Path
    storage: Storage
    trials: int
    heartbeat: int = HEARTBEAT_S
    data_dir: str | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # system.threads / system.device
    deadline: float | None = None  # --timeout: no trial starts after this _now()


def work(cfg: WorkerConfig, log: Callable[[str], None] = print) -> None:
    """One worker: run trials of the study until N are finished (waiting, at the end, for
    the running trials of other workers to finish or be found dead)."""
    optuna = load_optuna()
    log = JobLog(TuneDir(cfg.out).file(TUNE_LOG), log)
    study = open_study(cfg.spec, cfg.storage, cfg.heartbeat)
    waiting_said = False
    with WorkerLock(cfg.out) as me:

        def objective(trial) -> float:
            return run_trial(
                trial,
                cfg.spec,
                cfg.out,
                runtime=cfg.runtime,
                data_dir=cfg.data_dir,
                worker=me.id,
                log=log,
            )

        def after(study, trial) -> None:
            write_summary(study, cfg.spec, cfg.out, cfg.trials)

        while True:
            fail_dead_trials(study, cfg.out, log, own=me.id)
            fail_stale_trials(study)
            record_killed_trials(study, cfg.out)
            c = count(study.get_trials(deepcopy=False))
            if c.finished >= cfg.trials or timed_out(cfg):
                break
            if c.finished + c.running >= cfg.trials:
                if not waiting_said:
                    log(f"waiting for {c.running} running trial(s) of other workers")
                    waiting_said = True
                time.sleep(min(max(cfg.heartbeat / 2, 0.5), 10))
                continue
            try:
                study.optimize(objective, n_trials=1, catch=(CifarlabError,), callbacks=[after])
            except KeyboardInterrupt:
                _retry_interrupted(study, me.id, log)
                raise
            except optuna.exceptions.OptunaError as exc:
                raise TuneError(f"study {cfg.spec.study}: {exc}") from None
    write_summary(study, cfg.spec, cfg.out, cfg.trials)


def _now() -> float:
    """Wall-clock seconds (the epoch): a --timeout deadline holds across worker processes."""
    return time.time()


def deadline_after(timeout: float | None) -> float | None:
    """The --timeout deadline, on the clock :func:`timed_out` reads."""
    return None if timeout is None else _now() + timeout


def timed_out(cfg: WorkerConfig) -> bool:
    """--timeout has passed: start no new trial (those in flight finish, as in Optuna's
    ``study.optimize(timeout=...)``)."""
    return cfg.deadline is not None and _now() >= cfg.deadline


def record_killed_trials(study, out: Path) -> None:
    """Say in trial.json how a killed trial ended. Its worker died with the record saying
    "running" and the run's lock in place; once the trial is failed in the study (by its
    lock found free here, by heartbeats, or by Ctrl-C), the record in this OUT says "killed",
    why, and which trial retries it, and the stale lock goes (taking it proves that nobody
    trains there)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried_as = {}
    for t in trials:
        history = t.system_attrs.get("retry_history") or []
        if history:
            retried_as[history[-1]] = t.number
    for t in trials:
        if t.state != TrialState.FAIL or "error" in t.user_attrs:
            continue
        run = TuneDir(out).trial(t.number)
        try:
            record = read_json(trial_record(run), TuneError)
        except TuneError:
            continue  # a damaged record: the summary still says how the trial ended
        if not isinstance(record, dict) or record.get("state") != "running":
            continue
        worker = t.user_attrs.get("worker", "?")
        if t.number in retried_as:
            then = f"retried as trial {retried_as[t.number]}"
        elif len(t.system_attrs.get("retry_history") or []) >= MAX_RETRY:
            then = f"not retried again (killed {MAX_RETRY + 1} times)"
        else:
            then = "to be retried"
        reason = f"its worker {worker} stopped mid-trial (killed or interrupted); {then}"
        try:
            with RunLock(run):
                write_record(run, {**record, "reason": reason}, "killed")
        except (TrainingError, OSError):
            continue  # a live process trains there after all: leave its record


def _retry_interrupted(study, worker: str, log: Callable[[str], None]) -> None:
    """Ctrl-C in a trial: Optuna marked it failed; queue it again, as a killed trial is."""
    from optuna.trial import TrialState

    mine = [t for t in study.get_trials() if t.user_attrs.get("worker") == worker]
    if mine and mine[-1].state == TrialState.FAIL and "error" not in mine[-1].user_attrs:
        retry(study, mine[-1])
        log(f"trial {mine[-1].number}: interrupted; failed, to be retried")


def work_job(cfg: WorkerConfig) -> dict[str, Any]:
    """One ``--jobs`` worker process, as a job of :func:`cifarlab.jobs.pool.run_jobs` (which
    turns its CifarlabError into the job's ``{"error": ...}``)."""
    work(cfg)
    return {}
