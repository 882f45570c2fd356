"""The search's snapshot: summary.json (every trial, the counts, the best trial, Optuna's
parameter importances) and best.toml, written from the study after every trial, so that a
report, or a person, reads the directory without the database."""

from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json, write_text
from cifarlab.recipe import MAX_TEXT, dumps_toml, load_recipe
from cifarlab.rundir import RunDir
from cifarlab.tune.results import BEST_RECIPE, STUDY_DB, SUMMARY_FORMAT, SUMMARY_JSON, TuneDir
from cifarlab.tune.space import start_values
from cifarlab.tune.spec import OBJECTIVE, TuneSpec, params_text
from cifarlab.tune.study import count, load_optuna


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
                "describe": p.distribution(),
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
    write_json(TuneDir(out).file(SUMMARY_JSON), summary)
    if best is not None:
        write_best_recipe(spec, best, TuneDir(out).file(BEST_RECIPE))
    return summary


def _trial_row(t, out: Path) -> dict[str, Any]:
    state = t.state.name.lower()
    started, finished = t.datetime_start, t.datetime_complete
    run = TuneDir(out).trial(t.number)
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
    optuna = load_optuna()
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
        f"validation accuracy {best['value']:.2f}%): {params_text(best['params'])}"
    )[: MAX_TEXT["description"]]
    return raw


def write_best_recipe(spec: TuneSpec, best: dict[str, Any], path: Path) -> Path:
    head = (
        f"# The best trial of cifarlab tune's study {spec.study!r}: trial {best['number']}, "
        f"validation accuracy {best['value']:.2f}%.\n"
        f"# Its resolved recipe; train it with: cifarlab train --recipe {path.name}\n"
    )
    return write_text(path, head + dumps_toml(best_recipe(spec, best)))
