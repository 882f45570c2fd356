"""How jobs run: the jobs/threads/device policy and the process pool with its death rules.

- :func:`plan_jobs`: on the CPU ``--jobs J`` jobs at a time, with ``cpu_count // J`` torch
  threads each unless the command sets ``system.threads``; on a GPU one job at a time.
- :func:`run_jobs`: workers are spawned (no forked torch/OpenMP state) and die with the
  parent, even a parent killed with SIGKILL. A job that raises
  :class:`~cifarlab.errors.CifarlabError`, and a worker that dies in a job (killed, out of
  memory), come back as that job's result ``{"error": one line}`` while the other workers go
  on (a dead worker is replaced while jobs are left): the caller reports the failures once
  every job has ended. When this process stops (Ctrl-C, an error) every worker is
  terminated.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from cifarlab.errors import CifarlabError
from cifarlab.runtime import resolve_device

# --------------------------------------------------------------------------- the policy


def cpu_count() -> int:
    """CPUs this process may use (a SLURM or taskset limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_jobs(jobs: int, error: type[CifarlabError]) -> None:
    """``--jobs``, checked before anything is written."""
    if jobs < 1:
        raise error(f"--jobs {jobs}: must be >= 1")


@dataclass(frozen=True)
class JobPlan:
    """Where and how many jobs run, and the overrides every job gets for it."""

    device: Any  # torch.device
    jobs: int
    runtime: dict[str, Any] = field(default_factory=dict)  # system.device, system.threads


def plan_jobs(
    jobs: int,
    device: str | None,
    recipe_device: str,
    *,
    threads_fixed: bool,
    noun: str,
    log: Callable[[str], None],
) -> JobPlan:
    """``jobs`` at a time on the CPU, each with ``cpu_count // jobs`` threads unless
    ``threads_fixed`` (the command's ``--set system.threads``); one at a time elsewhere
    (saying so when more were asked). ``device``: the command's ``--device``, else the
    recipe's ``recipe_device``; ``noun``: what a job trains ("run", "trial")."""
    runtime: dict[str, Any] = {}
    if device is not None:
        runtime["system.device"] = device
    dev = resolve_device(device or recipe_device)
    if dev.type != "cpu":
        if jobs > 1:
            log(f"device {dev}: one {noun} at a time (--jobs {jobs} applies to the CPU only)")
        jobs = 1
    elif not threads_fixed:
        runtime["system.threads"] = max(cpu_count() // jobs, 1)
    return JobPlan(dev, jobs, runtime)


# --------------------------------------------------------------------------- the pool


def run_jobs(
    jobs: Sequence[Any],
    work: Callable[[Any], dict[str, Any]],
    workers: int,
    *,
    on_start: Callable[[Any], None],
    on_done: Callable[[Any, dict[str, Any]], None],
) -> None:
    """``work(job)`` for every job, in order, ``workers`` at a time; ``on_start(job)`` just
    before a job starts, ``on_done(job, result)`` when it ended, in this process. A job that
    raises CifarlabError, or whose worker dies, ends with ``{"error": one line}`` (the death
    rules above).

    One worker, or one job: in this process. Else ``workers`` spawned processes (``work``
    and the jobs must pickle), each running one job at a time, handed out by this process
    (so a "start" line is true, and a stop loses little)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            on_start(job)
            on_done(job, _attempt(work, job))
        return
    _run_pool(list(jobs), work, min(workers, len(jobs)), on_start, on_done)


def _attempt(work: Callable[[Any], dict[str, Any]], job: Any) -> dict[str, Any]:
    try:
        return work(job)
    except CifarlabError as exc:
        return {"error": str(exc)}


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    conn: Connection


def _run_pool(jobs, work, workers, on_start, on_done) -> None:
    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    queue = list(jobs)
    idle: list[_Worker] = []
    busy: dict[int, tuple[_Worker, Any]] = {}  # process sentinel -> (worker, its job)
    started: list[_Worker] = []
    try:
        while queue or busy:
            while queue and len(busy) < workers:
                idle = [w for w in idle if w.process.is_alive()]  # one may die while idle
                worker = idle.pop() if idle else _start_worker(ctx, work, started)
                job = queue.pop(0)
                on_start(job)
                worker.conn.send(job)
                busy[worker.process.sentinel] = (worker, job)
            ready = wait([w.conn for w, _ in busy.values()] + list(busy))
            for sentinel, (worker, job) in list(busy.items()):
                if worker.conn not in ready and sentinel not in ready:
                    continue
                result = _receive(worker)
                del busy[sentinel]
                if result is None:  # the worker died in the job: it is not reused
                    worker.process.join()
                    result = {"error": _death(worker.process.exitcode)}
                else:
                    idle.append(worker)
                on_done(job, result)
        for worker in idle:
            with contextlib.suppress(OSError):  # one may have died while idle
                worker.conn.send(None)  # no more jobs: the worker returns
        for worker in idle:
            worker.process.join()
    except BaseException:
        for worker in started:
            if worker.process.is_alive():
                worker.process.terminate()
        raise


def _start_worker(ctx, work, started: list[_Worker]) -> _Worker:
    mine, theirs = ctx.Pipe()
    process = ctx.Process(target=_worker_main, args=(theirs, work, os.getpid()))
    process.start()
    theirs.close()  # so that a dead worker reads as the end of its pipe here
    worker = _Worker(process, mine)
    started.append(worker)
    return worker


def _receive(worker: _Worker) -> dict[str, Any] | None:
    """The job's result, or None when the worker died before sending one."""
    try:
        if worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        pass
    return None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"its worker process was killed (signal {-exitcode})"
    return f"its worker process ended in the job (exit status {exitcode})"


def _worker_main(conn: Connection, work: Callable[[Any], dict[str, Any]], parent: int) -> None:
    """A pool worker: jobs from ``conn`` until None (or the parent is gone)."""
    die_with_parent(parent)
    try:
        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            if job is None:
                return
            conn.send(_attempt(work, job))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


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
