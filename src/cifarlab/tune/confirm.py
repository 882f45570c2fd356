"""The confirmation: is the tuned recipe better than the one the search started from?

The search chose its best trial by validation accuracy, from single runs, among many: the
winner is partly luck (our 10-seed study of seed-improved puts single runs within ±1.2
points at 95%). So the best recipe and the starting recipe are each trained again with K
new seeds (1000 .. 1000+K-1, seeds no trial used unless a --vary-seed search ran past trial
1000) as two seed studies of ``OUT/start.toml`` (cifarlab.studies: ``OUT/confirm/start``, and
``OUT/confirm/trial-<n>`` with the trial's fields as --set: the very studies `cifarlab seeds`
would make), and compared on the test set, which the search never saw: the difference of
mean test accuracy with Welch's 95% t interval. **The tuned recipe counts as better only if
that interval lies above 0**; below 0 it is worse; otherwise the difference is within seed
noise, and the output says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json, write_text
from cifarlab.recipe import load_recipe
from cifarlab.studies.runner import run_study
from cifarlab.studies.spec import seed_study
from cifarlab.studies.stats import summary_stats, welch_difference
from cifarlab.tune import TuneError
from cifarlab.tune.results import CONFIRM_DIR, CONFIRM_FORMAT, CONFIRM_JSON, CONFIRM_MD, TuneDir
from cifarlab.tune.space import start_values
from cifarlab.tune.spec import TuneSpec, write_start_recipe

SEED0 = 1000
LEVEL = 0.95


def confirm_seeds(k: int) -> list[int]:
    return list(range(SEED0, SEED0 + k))


def confirm(
    spec: TuneSpec,
    out: str | Path,
    summary: dict[str, Any],
    k: int,
    *,
    jobs: int = 1,
    device: str | None = None,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the starting and the best recipe with ``k`` seeds each; write and return the
    comparison (confirm.json, confirm.md). Rerunning resumes both seed studies."""
    out = Path(out)
    best = summary.get("best")
    if best is None:
        raise TuneError(f"{out}: no complete trial yet, so nothing to confirm; run more --trials")
    if k < 2:
        raise TuneError(f"--confirm {k}: Welch's interval needs at least 2 seeds per recipe")
    seeds = confirm_seeds(k)
    tuned_name = f"trial-{best['number']:04d}"
    base = {"number": best["number"], "params": best["params"], "seeds": seeds}
    # The starting recipe's own values (a model option's default when the recipe leaves it).
    if start_values(spec.space, load_recipe(dict(spec.start))) == best["params"]:
        result = {
            "format": CONFIRM_FORMAT,
            **base,
            "start": None,
            "tuned": None,
            "diff": None,
            "ci95": None,
            "better": False,
            "verdict": (
                f"The best trial ({best['number']}) trains the starting recipe itself: the "
                f"search found nothing better on validation accuracy; nothing to confirm."
            ),
        }
        _write(out, result, spec)
        return result

    start_file = str(write_start_recipe(spec, out))  # the very recipe the search started from
    studies = {
        "start": seed_study(start_file, seeds),
        tuned_name: seed_study(start_file, seeds, overrides=dict(best["params"])),
    }
    values = {}
    for name, study in studies.items():
        where = TuneDir(out).confirm_dir(name)
        log(f"confirmation: {name}, seeds {seeds[0]}..{seeds[-1]} -> {where}")
        done = run_study(
            study,
            where,
            jobs=jobs,
            device=device,
            data_dir=data_dir,
            figures=False,
            log=log,
        )
        values[name] = done["rows"][0]["values"]
    start, tuned = values["start"], values[tuned_name]
    w = welch_difference(start, tuned, LEVEL)
    result = {
        "format": CONFIRM_FORMAT,
        **base,
        "start": _side("start", start, seeds, f"{CONFIRM_DIR}/start"),
        "tuned": _side(tuned_name, tuned, seeds, f"{CONFIRM_DIR}/{tuned_name}"),
        "diff": w.diff,
        "ci95": list(w.ci) if w.ci else None,
        "df": w.df,
        "level": LEVEL,
        "better": bool(w.ci and w.ci[0] > 0),
        "verdict": verdict(w.diff, w.ci, k, best["number"]),
    }
    _write(out, result, spec)
    return result


def _side(name: str, values: list[float], seeds: list[int], where: str) -> dict[str, Any]:
    d = summary_stats(values, LEVEL)
    return {
        "name": name,
        "dir": where,
        "n": d.n,
        "mean": d.mean,
        "std": d.std,
        "ci95": list(d.ci) if d.ci else None,
        "values": values,
        "seeds": seeds[: len(values)],
    }


def verdict(diff: float, ci: tuple[float, float] | None, k: int, number: int) -> str:
    """The plain sentence the command prints and the report shows."""
    what = f"tuned recipe (trial {number}) minus starting recipe, test accuracy"
    if ci is None:
        return f"No verdict: {what} {diff:+.2f} points, but an interval needs 2+ runs per side."
    lo, hi = ci
    interval = f"{diff:+.2f} points, Welch 95% interval [{lo:+.2f}, {hi:+.2f}], {k} seeds each"
    if lo > 0:
        return f"BETTER: the tuned recipe beats the starting recipe beyond seed noise ({what}: {interval})."
    if hi < 0:
        return f"WORSE: the tuned recipe is below the starting recipe beyond seed noise ({what}: {interval})."
    return (
        f"NOT SHOWN BETTER: the interval includes 0, so the difference is within seed noise "
        f"({what}: {interval}); keep the starting recipe, or confirm with more seeds."
    )


def _write(out: Path, result: dict[str, Any], spec: TuneSpec) -> None:
    write_json(TuneDir(out).file(CONFIRM_JSON), result)
    write_text(TuneDir(out).file(CONFIRM_MD), to_markdown(result, spec))


def to_markdown(result: dict[str, Any], spec: TuneSpec) -> str:
    lines = [
        f"# {spec.study}: confirmation on the test set",
        "",
        f"Best trial {result['number']}: "
        + ", ".join(f"`{k}` = {v!r}" for k, v in result["params"].items())
        + ".",
        "",
    ]
    if result["start"] is not None:
        lines += ["| recipe | n | mean ± std (%) | 95% CI | per seed |", "|---|---|---|---|---|"]
        for side in (result["start"], result["tuned"]):
            std = f"{side['std']:.2f}" if side["std"] is not None else "n/a"
            ci = f"[{side['ci95'][0]:.2f}, {side['ci95'][1]:.2f}]" if side["ci95"] else "n/a"
            per = ", ".join(f"{v:.2f}" for v in side["values"])
            lines.append(
                f"| `{side['name']}` | {side['n']} | {side['mean']:.2f} ± {std} | {ci} | {per} |"
            )
        lines.append("")
    lines += [
        result["verdict"],
        "",
        "Seeds 1000 and up, which no trial used; test accuracy of each run; Welch's 95% t "
        "interval of the difference of means. The tuned recipe counts as better only if that "
        "interval lies above 0.",
    ]
    return "\n".join(lines) + "\n"
