"""The Optuna adapter: the search's study opened (created with trial 0 queued, or loaded and
checked to be this search), its pruner, a trial's suggested values, the trials counted, and
killed trials queued again. Optuna is imported on first use (cifarlab's other commands
never need it)."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

from cifarlab.errors import CifarlabError
from cifarlab.recipe import first_difference, load_recipe
from cifarlab.tune import TuneError
from cifarlab.tune.space import SearchSpace, start_values
from cifarlab.tune.spec import HEARTBEAT_S, POSITIONS, TuneSpec
from cifarlab.tune.storage import Storage

MAX_RETRY = 2  # a trial killed this many times more is left failed (it may kill its worker)
ATTR = "cifarlab"  # the study's user attribute holding the search's definition


def load_optuna():
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


def open_study(spec: TuneSpec, store: Storage, heartbeat: int = HEARTBEAT_S):
    """The search's Optuna study, created (with trial 0, the starting recipe, queued) or
    loaded; refused when the study in that storage is another search."""
    optuna = load_optuna()
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
        where = first_difference(stored, definition)
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
    optuna = load_optuna()
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
    optuna = load_optuna()
    optuna.storages.fail_stale_trials(study)
