"""The search: an Optuna study over a starting recipe and a search space.

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
import copy
import datetime as _dt
import fcntl
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.data.tensors import load_data_for
from cifarlab.errors import CifarlabError, TrainingError
from cifarlab.recipe import MAX_TEXT, dumps_toml, load_recipe
from cifarlab.rundir import RunDir, RunLock, read_json, write_json, write_text
from cifarlab.runtime import resolve_device
from cifarlab.jobs.pool import cpu_count, die_with_parent
from cifarlab.train.loop import train
from cifarlab.tune import TuneError
from cifarlab.tune.results import (
    BEST_RECIPE,
    FORMAT,
    FORMAT_VERSION,
    START_RECIPE,
    STUDY_DB,
    SUMMARY_FORMAT,
    SUMMARY_JSON,
    TRIAL_JSON,
    TRIALS_DIR,
    TUNE_JSON,
    TUNE_LOG,
    WORKERS_DIR,
    trial_dir,
)
from cifarlab.tune.space import (
    SearchSpace,
    builtin_spaces,
    load_space,
    start_values,
)
from cifarlab.tune.storage import Storage, resolve_storage

PRUNERS = ("median", "hyperband", "none")
OBJECTIVE = "validation accuracy (%) at the run's last evaluation point"
# --trials at most: 10x the top of the budget Optuna's documentation recommends for its TPE
# sampler (100 to 1,000 trials); summary.json, rewritten after every trial, lists every one.
MAX_TRIALS = 10_000
MAX_RETRY = 2  # a trial killed this many times more is left failed (it may kill its worker)
HEARTBEAT_S = 60  # Optuna's heartbeat interval; a trial silent for twice this is stale
POSITIONS = 1000  # intermediate values are reported at the position in the run, per mille
ATTR = "cifarlab"  # the study's user attribute holding the search's definition


def _optuna():
    """Optuna, imported on first use (cifarlab's other commands never need it)."""
    try:
        import optuna
    except ImportError:
        raise TuneError(
            "cifarlab tune needs Optuna: pip install 'cifarlab[tune]' (optuna 5)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happens
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --------------------------------------------------------------------------- the definition


@dataclass
class TuneSpec:
    """What a search is: the starting recipe, the space, and how trials are seeded and pruned.

    ``start`` is the resolved starting recipe (the recipe with the command's ``--set``), so a
    search does not depend on a recipe file staying as it was, and workers on other machines
    are checked to search the very same recipe.
    """

    recipe: str  # the recipe as given: a built-in name or a file
    start: dict[str, Any]  # the resolved starting recipe
    space: SearchSpace
    study: str  # the Optuna study's name
    overrides: dict[str, Any] = field(default_factory=dict)  # the command's --set
    storage: str | None = None  # None: OUT/study.db; else the URL, its password hidden
    pruner: str = "median"  # one of PRUNERS
    prune_startup: int = 5  # complete trials before the median pruner prunes
    prune_warmup: float = 0.25  # fraction of every run never pruned
    vary_seed: bool = False  # trial k trains with seed (recipe seed + k); else all the same

    def definition(self) -> dict[str, Any]:
        """What every worker of one study must share (the study keeps it as an attribute)."""
        return _json(
            {
                "start": self.start,
                "space": self.space.to_json()["params"],
                "objective": OBJECTIVE,
                "pruner": {
                    "name": self.pruner,
                    "startup": self.prune_startup,
                    "warmup": self.prune_warmup,
                },
                "vary_seed": self.vary_seed,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return _json(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "recipe": self.recipe,
                "space_name": self.space.name,
                "overrides": self.overrides,
                "study": self.study,
                "storage": self.storage,
                **self.definition(),
            }
        )


def make_spec(
    recipe: str | Path,
    space: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    study: str | None = None,
    pruner: str = "median",
    prune_startup: int = 5,
    prune_warmup: float = 0.25,
    vary_seed: bool = False,
) -> TuneSpec:
    """A search as the command defines it: the starting recipe (``recipe`` with
    ``overrides``), the space (default: the built-in one named after the recipe), the study
    name (default: the recipe's name, with the space's when they differ). Checked."""
    overrides = dict(overrides or {})
    start = load_recipe(recipe, overrides)  # fail fast, before any data or database
    if space is None:
        if start.name not in builtin_spaces():
            raise TuneError(
                f"--space: no built-in space for recipe {start.name!r} (built-in: "
                f"{', '.join(builtin_spaces())}); give --space FILE"
            )
        space = start.name
    searched = load_space(space, start)
    name = study or (start.name if searched.name == start.name else f"{start.name}-{searched.name}")
    spec = TuneSpec(
        recipe=str(recipe),
        start=start.to_dict(),
        space=searched,
        study=name,
        overrides=overrides,
        pruner=pruner,
        prune_startup=prune_startup,
        prune_warmup=prune_warmup,
        vary_seed=vary_seed,
    )
    check_options(spec)
    return spec


def _json(obj: Any) -> Any:
    """Round-tripped through JSON, so that comparing with a stored copy is exact."""
    return json.loads(json.dumps(obj))


def check_options(spec: TuneSpec) -> None:
    """Refuse, before anything trains, a search that could not measure what it claims."""
    start = load_recipe(dict(spec.start))
    if start.data.val_fraction <= 0:
        raise TuneError(
            f"recipe {spec.recipe}: holds out no validation images (data.val_fraction = "
            f"{start.data.val_fraction:g}) and a search is judged on validation accuracy, never "
            f"the test set; add --set data.val_fraction=0.1"
        )
    if spec.pruner not in PRUNERS:
        raise TuneError(f"--pruner {spec.pruner!r}: choose one of {', '.join(PRUNERS)}")
    if spec.prune_startup < 0:
        raise TuneError(f"--prune-startup {spec.prune_startup}: must be >= 0")
    if not 0 <= spec.prune_warmup < 1:
        raise TuneError(f"--prune-warmup {spec.prune_warmup:g}: must be in [0, 1)")
    if not spec.study or len(spec.study) > 200:
        raise TuneError(f"--study {spec.study!r}: give a name of 1 to 200 characters")


@contextlib.contextmanager
def tune_dir_start(spec: TuneSpec, out: Path) -> Iterator[None]:
    """Start (or resume) a tune directory around the block that opens the study.

    A tune.json already there must be this very search (else refused, nothing touched). A new
    directory is made before the block (the default SQLite study lives in it) and gets
    tune.json, start.toml and trials/ after it; when the block fails (a storage that does not
    open, another search in the study), everything the start made is removed again, so the
    corrected command starts afresh."""
    path = out / TUNE_JSON
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TuneError(f"{path}: cannot read ({exc}); fix or remove the file") from None
        where = _first_difference(existing, spec.to_json())
        if where is not None:
            raise TuneError(
                f"{path}: holds another search ({where} differs); rerun with its exact "
                f"options to resume it, or choose another --out"
            )
        yield
        return
    made = [p for p in (out, *out.parents) if not p.exists()]  # innermost first
    out.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(out))
    try:
        yield
        (out / TRIALS_DIR).mkdir(exist_ok=True)
        write_start_recipe(spec, out)
        write_json(path, spec.to_json())
    except BaseException:
        for name in set(os.listdir(out)) - before:
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    (out / name).unlink()
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never another's files
        raise


def write_start_recipe(spec: TuneSpec, out: Path) -> Path:
    """OUT/start.toml: the starting recipe as the search resolved it (the confirmation
    trains this, so a recipe file edited since cannot change what is compared)."""
    head = f"# The starting recipe of cifarlab tune's study {spec.study!r}: {spec.recipe}"
    head += "".join(f" --set {k}={_fmt(v)}" for k, v in spec.overrides.items()) + "\n"
    return write_text(out / START_RECIPE, head + dumps_toml(spec.start))


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The dotted path of the first leaf where ``a`` and ``b`` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            where = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if where is not None:
                return where
        return None
    return None if a == b else prefix.rstrip(".") or "everything"


# --------------------------------------------------------------------------- the study


def open_study(spec: TuneSpec, store: Storage, heartbeat: int = HEARTBEAT_S):
    """The search's Optuna study, created (with trial 0, the starting recipe, queued) or
    loaded; refused when the study in that storage is another search."""
    optuna = _optuna()
    from optuna.storages import RDBStorage

    url, shown = store.url, store.shown
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        storage = RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=retry,
        )
        sampler, pruner = optuna.samplers.TPESampler(), make_pruner(spec)
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=spec.study,
                direction="maximize",
                sampler=sampler,
                pruner=pruner,
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(
                study_name=spec.study, storage=storage, sampler=sampler, pruner=pruner
            )
            created = False
    except ImportError as exc:  # resolve_storage found the driver; a module it needs is not
        raise TuneError(f"--storage {shown}: its database driver cannot load ({exc})") from None
    except Exception as exc:  # sqlalchemy's errors: no server, bad credentials, no database
        if isinstance(exc, CifarlabError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuneError(f"--storage {shown}: cannot open the study ({first[:300]})") from None
    definition = spec.definition()
    if created:
        study.set_user_attr(ATTR, definition)
        start = start_values(spec.space, load_recipe(dict(spec.start)))
        if start:  # trial 0: the starting recipe itself
            study.enqueue_trial(start, user_attrs={"start": True})
        return study
    stored = study.user_attrs.get(ATTR)
    if stored is None:
        if study.trials:
            raise TuneError(
                f"--study {spec.study}: a study of that name in {shown} was not made by "
                f"cifarlab tune; choose another --study"
            )
        study.set_user_attr(ATTR, definition)
    elif stored != definition:
        where = _first_difference(stored, definition)
        raise TuneError(
            f"--study {spec.study}: the study of that name in {shown} is another search "
            f"({where} differs); give the same recipe, space, --set and pruner, or another --study"
        )
    return study


def make_pruner(spec: TuneSpec):
    """median: stop a trial whose best value so far is below the median of the complete
    trials' values at the same position, once ``prune_startup`` trials are complete and past
    the first ``prune_warmup`` of the run; hyperband: Optuna's Hyperband over positions
    (smallest budget: the warm-up); none: every trial runs to its end."""
    optuna = _optuna()
    warmup = round(spec.prune_warmup * POSITIONS)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.prune_startup, n_warmup_steps=warmup
        )
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(warmup, 1), max_resource=POSITIONS, reduction_factor=3
        )
    return optuna.pruners.NopPruner()


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """The trial's value of every field of the space (fixed ones, e.g. trial 0's, included)."""
    out = {}
    for p in space.params:
        if p.kind == "log_uniform":
            out[p.field] = trial.suggest_float(p.field, p.low, p.high, log=True)
        elif p.kind == "uniform":
            out[p.field] = trial.suggest_float(p.field, p.low, p.high)
        elif p.kind == "int":
            out[p.field] = trial.suggest_int(p.field, p.low, p.high)
        else:
            out[p.field] = trial.suggest_categorical(p.field, list(p.choices))
    return out


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # every failed trial: errors and killed ones
    errors: int = 0  # failed with an error in the trial (these count toward N)
    running: int = 0
    waiting: int = 0  # queued: trial 0 and retries not yet started

    @property
    def finished(self) -> int:
        """What counts toward --trials N."""
        return self.complete + self.pruned + self.errors


def count(trials) -> Counts:
    from optuna.trial import TrialState

    c = Counts()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif t.state == TrialState.FAIL:
            c.failed += 1
            c.errors += "error" in t.user_attrs
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
    return c


# --------------------------------------------------------------------------- workers


class WorkerLock:
    """``OUT/workers/<id>.lock``, flock-held while this worker process lives.

    The kernel drops the lock when the process dies, however it dies; a worker that can take
    another's lock knows that worker is gone, and fails the trials it left RUNNING. The file
    is removed when the worker ends normally (and by whoever finds it dead).
    """

    def __init__(self, out: Path) -> None:
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
        self.id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = out / WORKERS_DIR / f"{self.id}.lock"
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
    path = out / WORKERS_DIR / f"{worker}.lock"
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
    optuna = _optuna()
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


def retry(study, trial) -> None:
    """Queue a killed trial again (same parameters, same seed), at most MAX_RETRY times; the
    storage calls this too, for trials its heartbeats find stale. The new trial forgets the
    dead worker's id, so that nobody takes it for a trial of that worker before it starts."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trial = copy.deepcopy(trial)
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != "worker"}
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def fail_stale_trials(study) -> None:
    """Optuna's heartbeat check: RUNNING trials silent for two heartbeats are failed, and
    retried by the storage's callback (workers on other machines)."""
    optuna = _optuna()
    optuna.storages.fail_stale_trials(study)


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


class TuneLog:
    """Lines to the console and, appended with time and pid, to OUT/tune.log."""

    def __init__(self, out: Path, log: Callable[[str], None] = print) -> None:
        self.path = out / TUNE_LOG
        self.log = log

    def __call__(self, line: str) -> None:
        self.log(line)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {line}\n")


def work(cfg: WorkerConfig, log: Callable[[str], None] = print) -> None:
    """One worker: run trials of the study until N are finished (waiting, at the end, for
    the running trials of other workers to finish or be found dead)."""
    optuna = _optuna()
    log = TuneLog(cfg.out, log)
    study = open_study(cfg.spec, cfg.storage, cfg.heartbeat)
    data: dict[str, Any] = {}
    waiting_said = False
    with WorkerLock(cfg.out) as me:

        def objective(trial) -> float:
            return run_trial(trial, cfg, me.id, data, log)

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
        run = trial_dir(out, t.number)
        try:
            record = read_json(run / TRIAL_JSON, TuneError)
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
                _write_trial(run, {**record, "reason": reason}, "killed")
        except (TrainingError, OSError):
            continue  # a live process trains there after all: leave its record


def _retry_interrupted(study, worker: str, log: Callable[[str], None]) -> None:
    """Ctrl-C in a trial: Optuna marked it failed; queue it again, as a killed trial is."""
    from optuna.trial import TrialState

    mine = [t for t in study.get_trials() if t.user_attrs.get("worker") == worker]
    if mine and mine[-1].state == TrialState.FAIL and "error" not in mine[-1].user_attrs:
        retry(study, mine[-1])
        log(f"trial {mine[-1].number}: interrupted; failed, to be retried")


def run_trial(trial, cfg: WorkerConfig, worker: str, data: dict, log) -> float:
    """Train one trial in OUT/trials/<number>; its final validation accuracy (%)."""
    optuna = _optuna()
    spec, number = cfg.spec, trial.number
    trial.set_user_attr("worker", worker)  # first: from here on a death of ours is found
    params = suggest(trial, spec.space)
    retried = list(_system_attrs(trial).get("retry_history", []))
    seed = trial.user_attrs.get("seed")  # a retry keeps its original's seed
    if seed is None:
        seed = int(spec.start["seed"]) + (number if spec.vary_seed else 0)
    trial.set_user_attr("seed", seed)
    run_dir = trial_dir(cfg.out, number)
    from_step = take_over(trial_dir(cfg.out, retried[-1]), run_dir) if retried else None
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "trial": number,
        "study": spec.study,
        "params": params,
        "seed": seed,
        "retry_of": retried[0] if retried else None,
        "continued_from_step": from_step,
    }
    _write_trial(run_dir, record, "running")
    how = ""
    if retried:
        how = f" (retry of trial {retried[-1]}" + (
            f", from its step-{from_step} checkpoint)" if from_step is not None else ", afresh)"
        )
    log(f"trial {number} started{how}: {_params_text(params)}, seed {seed}")
    report = _Reporter(trial, optuna)
    try:
        if from_step is not None:  # the pruner sees what the killed trial had reported
            report.replay(run_dir)
        if spec.start["data"]["source"] not in data:
            data.clear()
            data[spec.start["data"]["source"]] = load_data_for(
                spec.start["data"]["source"], cfg.data_dir, lambda s: None
            )
        with open(run_dir / "train.log", "a", encoding="utf-8") as logf:

            def trial_log(line: str) -> None:
                logf.write(line + "\n")
                logf.flush()

            metrics = train(
                dict(spec.start),
                out_dir=run_dir,
                data=next(iter(data.values())),
                data_dir=cfg.data_dir,
                overrides={**params, "seed": seed, **cfg.runtime},
                resume="auto",
                progress=False,
                log=trial_log,
                on_eval=report,
            )
    except optuna.TrialPruned as exc:
        _write_trial(run_dir, {**record, "reason": str(exc)}, "pruned")
        log(f"trial {number} pruned {exc}")
        raise
    except CifarlabError as exc:
        trial.set_user_attr("error", str(exc))
        _write_trial(run_dir, {**record, "error": str(exc)}, "failed")
        log(f"trial {number} failed: {exc}")
        raise
    value = 100.0 * metrics["val_accuracy"]
    _write_trial(run_dir, {**record, "value": value}, "complete")
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


def _write_trial(run_dir: Path, record: dict[str, Any], state: str) -> None:
    write_json(run_dir / TRIAL_JSON, {**record, "state": state})


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _child(cfg: WorkerConfig, parent: int) -> None:
    """A --jobs worker process: dies with the parent; errors as one line, exit 2."""
    die_with_parent(parent)
    try:
        work(cfg)
    except CifarlabError as exc:
        print(f"cifarlab: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


# --------------------------------------------------------------------------- the command


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
    deadline = None if timeout is None else _now() + timeout
    check_run_options(trials, jobs, heartbeat, timeout)
    check_options(spec)
    store = resolve_storage(out, storage)
    spec.storage = store.shown if store.given else None
    with tune_dir_start(spec, out):  # a start that fails leaves nothing behind
        study = open_study(spec, store, heartbeat)  # before the workers: one creates it
    tlog = TuneLog(out, log)
    if store.note:
        tlog(store.note)

    runtime: dict[str, Any] = {}
    if device is not None:
        runtime["system.device"] = device
    dev = resolve_device(device or spec.start["system"]["device"])
    if dev.type != "cpu":
        if jobs > 1:
            tlog(f"device {dev}: one trial at a time (--jobs {jobs} applies to the CPU only)")
        jobs = 1
    elif "system.threads" not in spec.overrides:
        runtime["system.threads"] = max(cpu_count() // jobs, 1)
    c = count(study.get_trials(deepcopy=False))
    tlog(
        f"study {spec.study} ({spec.storage or STUDY_DB}): {c.finished} of {trials} trials "
        f"finished ({c.complete} complete, {c.pruned} pruned, {c.errors} failed), "
        f"{c.running} running elsewhere; {jobs} worker(s) on {dev}"
    )
    cfg = WorkerConfig(spec, out, store, trials, heartbeat, data_dir, runtime, deadline)
    if jobs == 1:
        work(cfg, log)
    else:
        _run_workers(cfg, jobs, tlog)
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
            f"({_params_text(best['params'])}) -> {out / BEST_RECIPE}"
            if best
            else "; no complete trial yet"
        )
    )
    return summary


def check_run_options(trials: int, jobs: int, heartbeat: int, timeout: float | None) -> None:
    """The command's numbers, checked before anything is written or opened."""
    if not 0 <= trials <= MAX_TRIALS:
        raise TuneError(
            f"--trials {trials}: must be in [0, {MAX_TRIALS}] (10x the most trials Optuna "
            f"recommends for its TPE sampler; each trial is a training run)"
        )
    if jobs < 1:
        raise TuneError(f"--jobs {jobs}: must be >= 1")
    if heartbeat < 1:
        raise TuneError(f"--heartbeat {heartbeat}: must be a whole number of seconds >= 1")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise TuneError(f"--timeout {timeout:g}: give a number of seconds > 0")


def _run_workers(cfg: WorkerConfig, jobs: int, log) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    procs = [ctx.Process(target=_child, args=(cfg, os.getpid())) for _ in range(jobs)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise TuneError(
            f"{len(bad)} of {jobs} workers failed (exit status {', '.join(map(str, bad))}); "
            f"see {cfg.out / TUNE_LOG}; rerun the command to go on"
        )


# --------------------------------------------------------------------------- the snapshot


def write_summary(
    study, spec: TuneSpec, out: Path, target: int, stopped: str | None = None
) -> dict[str, Any]:
    """summary.json (every trial, counts, best, importances) and best.toml, from the study;
    ``stopped``: "timeout" when --timeout ended the search before ``target`` trials."""
    trials = study.get_trials(deepcopy=False)
    rows = [_trial_row(t, out) for t in trials]
    c = count(trials)
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: (r["value"], -r["number"])) if complete else None
    start = start_values(spec.space, load_recipe(dict(spec.start)))
    summary = {
        "format": SUMMARY_FORMAT,
        "study": spec.study,
        "storage": spec.storage or STUDY_DB,
        "recipe": spec.recipe,
        "start_name": spec.start["name"],
        "objective": OBJECTIVE,
        "direction": "maximize",
        "pruner": spec.definition()["pruner"],
        "vary_seed": spec.vary_seed,
        "target_trials": target,
        "stopped": stopped,
        "space": [
            {
                "field": p.field,
                "distribution": p.to_json(),
                "describe": p.describe(),
                "start": start.get(p.field),
            }
            for p in spec.space.params
        ],
        "counts": {
            "complete": c.complete,
            "pruned": c.pruned,
            "failed": c.failed,
            "failed_error": c.errors,
            "failed_killed": c.failed - c.errors,
            "running": c.running,
            "waiting": c.waiting,
            "finished": c.finished,
        },
        "best": best
        and {k: best[k] for k in ("number", "value", "params", "seed", "run", "start")},
        "importance": importances(study, trials),
        "trials": rows,
        "written": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    write_json(out / SUMMARY_JSON, summary)
    if best is not None:
        write_best_recipe(spec, best, out / BEST_RECIPE)
    return summary


def _trial_row(t, out: Path) -> dict[str, Any]:
    state = t.state.name.lower()
    started, finished = t.datetime_start, t.datetime_complete
    run = trial_dir(out, t.number)
    retried = t.system_attrs.get("retry_history") or []
    return {
        "number": t.number,
        "state": {"fail": "failed"}.get(state, state),
        "value": t.value if state == "complete" else None,
        "params": dict(t.params),
        "seed": t.user_attrs.get("seed"),
        "start": bool(t.user_attrs.get("start")),
        "intermediate": sorted([int(k), float(v)] for k, v in t.intermediate_values.items()),
        "retry_of": retried[-1] if retried else None,
        "error": t.user_attrs.get("error"),
        "killed": state == "fail" and "error" not in t.user_attrs,
        "worker": t.user_attrs.get("worker"),
        "run": str(run.relative_to(out)) if RunDir(run).is_run() else None,
        "started": started.isoformat(timespec="seconds") if started else None,
        "finished": finished.isoformat(timespec="seconds") if finished else None,
        "duration_s": round((finished - started).total_seconds(), 1)
        if started and finished
        else None,
    }


def importances(study, trials) -> dict[str, Any]:
    """Optuna's own parameter-importance evaluator (PED-ANOVA, Optuna 5's default: numpy
    only, no scikit-learn, nothing fetched) over the complete trials."""
    optuna = _optuna()
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    evaluator = "PED-ANOVA (optuna.importance.get_param_importances, default evaluator)"
    if len(complete) < 3:
        return {
            "evaluator": evaluator,
            "values": None,
            "note": f"needs at least 3 complete trials ({len(complete)} so far)",
        }
    frozen = optuna.create_study(direction="maximize")
    frozen.add_trials(complete)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(frozen)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {"evaluator": evaluator, "values": None, "note": str(exc)[:200]}
    return {
        "evaluator": evaluator,
        "values": {k: float(v) for k, v in values.items()},
        "n_trials": len(complete),
    }


def best_recipe(spec: TuneSpec, best: dict[str, Any]) -> dict[str, Any]:
    """The best trial's resolved recipe, named ``<recipe>-tuned``, as a dict."""
    recipe = load_recipe(dict(spec.start), {**best["params"], "seed": best["seed"]})
    raw = recipe.to_dict()
    raw["name"] = f"{recipe.name}-tuned"[: MAX_TEXT["name"]]
    raw["description"] = (
        f"{recipe.name} tuned by cifarlab tune (study {spec.study}, trial {best['number']}: "
        f"validation accuracy {best['value']:.2f}%): {_params_text(best['params'])}"
    )[: MAX_TEXT["description"]]
    return raw


def write_best_recipe(spec: TuneSpec, best: dict[str, Any], path: Path) -> Path:
    head = (
        f"# The best trial of cifarlab tune's study {spec.study!r}: trial {best['number']}, "
        f"validation accuracy {best['value']:.2f}%.\n"
        f"# Its resolved recipe; train it with: cifarlab train --recipe {path.name}\n"
    )
    return write_text(path, head + dumps_toml(best_recipe(spec, best)))
