"""A study's summary table: test accuracy per step as a distribution over seeds. One concern:
that table (summary.json) and its CSV and Markdown forms.

For each step: n (finished runs), mean, sample std, the 95% t interval for the
mean, min, max and the per-seed values (in seed order, in percent), and the
difference from its comparison step (the previous step of a cumulative ladder;
"final" for the "-<step>" rows of a leave-one-out study) with Welch's 95%
interval. "Beyond noise" means that interval excludes 0. Where n < 2 the std and
intervals are null, and the Markdown says so.

Each row also holds the final *training* accuracy (%) and loss of its runs
(``train_accuracy``, ``train_loss``: the same statistics and difference): the
last evaluation point of each run's history.json, the running mean over the
training batches since the point before (augmented images, weights moving, as the
run prints it), which is what a training curve such as He et al.'s figure 6
plots. The summary depends only on study.json and the finished runs' metrics.json
and history.json, so an interrupted-and-resumed study, a merged set of shards and
an uninterrupted study give identical summaries.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json, write_text
from cifarlab.rundir import RunDir, check_metrics
from cifarlab.stored import number
from cifarlab.studies import StudyError
from cifarlab.studies.figures import plot_study
from cifarlab.studies.spec import StudySpec, read_study
from cifarlab.studies.stats import summary_stats, welch_difference
from cifarlab.studies.studydir import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, StudyDir

SUMMARY_FORMAT = "cifarlab-study-summary"
LEVEL = 0.95


def _read_json(path: Path, what: str, fix: str) -> Any:
    """``path``'s JSON; a damaged file is one line: "PATH: damaged WHAT (why); FIX"."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StudyError(f"{path}: damaged {what} ({exc}); {fix}") from None


def collect(study_dir: str | Path, study: StudySpec) -> dict[str, dict[int, dict[str, Any]]]:
    """step -> seed -> that run's metrics.json, for the finished runs only."""
    where = StudyDir(study_dir)
    out: dict[str, dict[int, dict[str, Any]]] = {s.name: {} for s in study.steps}
    for run in study.runs():
        path = RunDir(where.run(run.step, run.seed)).metrics_path
        if not path.is_file():
            continue
        metrics = _read_json(path, "metrics", "delete the file to rerun the run")
        out[run.step][run.seed] = check_metrics(metrics, path)  # every number, one line
    return out


# summary key -> (history.json key, scale to the summary's unit, upper bound of the stored value)
TRAINING = {"train_accuracy": ("train_acc", 100.0, 1.0), "train_loss": ("train_loss", 1.0, None)}


def collect_training(
    study_dir: str | Path, results: dict[str, dict[int, dict[str, Any]]]
) -> dict[str, dict[int, dict[str, float]]]:
    """step -> seed -> {"train_accuracy": %, "train_loss": mean cross-entropy} of every run in
    ``results`` (the finished ones): the last value of each in its history.json. A run
    without a history.json, or whose history has no training value, is left out (then the
    row's training n is below its test n)."""
    where = StudyDir(study_dir)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for step, per_seed in results.items():
        for seed in per_seed:
            path = RunDir(where.run(step, seed)).history_path
            if not path.is_file():
                continue
            history = _read_json(path, "history", "delete the run's metrics.json to rerun it")
            if not isinstance(history, dict):
                raise StudyError(f"{path}: expected a JSON object; delete the run to rerun it")
            final: dict[str, float] = {}
            for key, (stored, scale, high) in TRAINING.items():
                column = history.get(stored)
                known = [v for v in column if v is not None] if isinstance(column, list) else []
                if known:
                    final[key] = float(number(known[-1], path, stored, low=0.0, high=high)) * scale
            if final:
                out.setdefault(step, {})[seed] = final
    return out


def _difference(
    before: list[float], after: list[float]
) -> tuple[float | None, list[float] | None, bool | None]:
    """mean(after) - mean(before), its Welch 95% interval and whether that excludes 0;
    None where a sample is empty (the interval: where either has fewer than 2 values)."""
    if not before or not after:
        return None, None, None
    w = welch_difference(before, after, LEVEL)
    if w.ci is None:
        return w.diff, None, None
    return w.diff, list(w.ci), bool(w.ci[0] > 0 or w.ci[1] < 0)


def _training_values(
    training: dict[str, dict[int, dict[str, float]]], key: str, step: str, seeds: list[int]
) -> list[float]:
    got = training.get(step, {})
    return [got[s][key] for s in seeds if key in got.get(s, {})]


def _training_block(mine: list[float], theirs: list[float]) -> dict[str, Any]:
    """One training metric of one row: n, mean, std, 95% t interval, per-seed values, and
    the difference from the comparison step's values with Welch's 95% interval."""
    d = summary_stats(mine, LEVEL)
    diff, diff_ci, beyond = _difference(theirs, mine)
    return {
        "n": d.n,
        "mean": d.mean,
        "std": d.std,
        "ci95": list(d.ci) if d.ci else None,
        "values": mine,
        "diff_prev": diff,
        "diff_prev_ci95": diff_ci,
        "diff_beyond_noise": beyond,
    }


def summarize(
    study: StudySpec,
    results: dict[str, dict[int, dict[str, Any]]],
    training: dict[str, dict[int, dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """The summary dict (summary.json) from a study and its finished runs' metrics, and
    their final training accuracy and loss (:func:`collect_training`; None: none known,
    the rows' ``train_*`` statistics are then empty)."""
    training = training or {}
    values: dict[str, list[float]] = {}
    seeds_of: dict[str, list[int]] = {}
    rows: list[dict[str, Any]] = []
    for k, step in enumerate(study.steps):
        done = results.get(step.name, {})
        seeds = [s for s in study.seeds if s in done]
        vals = [float(done[s]["test_accuracy"]) * 100.0 for s in seeds]
        values[step.name] = vals
        seeds_of[step.name] = seeds
        d = summary_stats(vals, LEVEL)
        ref = (
            step.diff_ref if step.diff_ref is not None else (study.steps[k - 1].name if k else None)
        )
        diff, diff_ci, beyond = _difference(values.get(ref, []) if ref else [], vals)
        rows.append(
            {
                "step": step.name,
                "description": step.description,
                "n": d.n,
                "n_expected": len(study.seeds),
                "mean": d.mean,
                "std": d.std,
                "ci95": list(d.ci) if d.ci else None,
                "min": d.min,
                "max": d.max,
                "values": vals,
                "seeds": seeds,
                "diff_ref": ref,
                "diff_prev": diff,
                "diff_prev_ci95": diff_ci,
                "diff_beyond_noise": beyond,
                "reference": step.reference,
                **{
                    key: _training_block(
                        _training_values(training, key, step.name, seeds),
                        _training_values(training, key, ref, seeds_of[ref]) if ref else [],
                    )
                    for key in TRAINING
                },
            }
        )
    missing = [
        {"step": r.step, "seed": r.seed}
        for r in study.runs()
        if r.seed not in results.get(r.step, {})
    ]
    data = []
    for per_seed in results.values():
        for m in per_seed.values():
            shape = {k: m.get("data", {}).get(k) for k in ("n_train", "n_val", "n_test")}
            if shape not in data:
                data.append(shape)
    return {
        "format": SUMMARY_FORMAT,
        "kind": study.kind,
        "name": study.name,
        "mode": study.mode,
        "ladder": study.ladder,
        "recipe": study.recipe,
        "seeds": list(study.seeds),
        "metric": "test accuracy (%)",
        "level": LEVEL,
        "rows": rows,
        "missing": missing,
        "data": data,
    }


def summarize_study(
    study_dir: str | Path, *, figures: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Recompute and write summary.json/csv/md (and the figures) of a study directory."""

    study_dir = Path(study_dir)
    study = read_study(study_dir)
    results = collect(study_dir, study)
    summary = summarize(study, results, collect_training(study_dir, results))
    if len(summary["data"]) > 1:
        log(f"warning: the runs of {study_dir} used different data: {summary['data']}")
    where = StudyDir(study_dir)
    write_json(where.file(SUMMARY_JSON), summary)
    write_text(where.file(SUMMARY_CSV), to_csv(summary))
    write_text(where.file(SUMMARY_MD), to_markdown(summary))
    if figures:
        plot_study(study_dir, study, summary, results)
    done = sum(r["n"] for r in summary["rows"])
    log(f"summary: {where.file(SUMMARY_MD)} ({done} of {done + len(summary['missing'])} runs)")
    return summary


CSV_COLUMNS = (
    "step",
    "n",
    "n_expected",
    "mean",
    "std",
    "ci95_lo",
    "ci95_hi",
    "min",
    "max",
    "diff_ref",
    "diff",
    "diff_ci95_lo",
    "diff_ci95_hi",
    "diff_beyond_noise",
    "reference",
    *(
        f"{key}_{column}"
        for key in TRAINING
        for column in ("n", "mean", "std", "diff", "diff_ci95_lo", "diff_ci95_hi")
    ),
    "values",
)


def to_csv(summary: dict[str, Any]) -> str:
    """One row per step; empty cells where a value is undefined; values joined by ';'."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in summary["rows"]:
        ci = r["ci95"] or [None, None]
        dci = r["diff_prev_ci95"] or [None, None]
        cells = (
            r["step"],
            r["n"],
            r["n_expected"],
            r["mean"],
            r["std"],
            ci[0],
            ci[1],
            r["min"],
            r["max"],
            r["diff_ref"],
            r["diff_prev"],
            dci[0],
            dci[1],
            r["diff_beyond_noise"],
            r["reference"],
            *(cell for key in TRAINING for cell in _training_cells(r.get(key))),
            ";".join(repr(v) for v in r["values"]),
        )
        w.writerow(["" if c is None else c for c in cells])
    return buf.getvalue()


def _training_cells(block: dict[str, Any] | None) -> tuple[Any, ...]:
    """A row's training metric as the CSV's six cells (None: no value)."""
    if block is None:  # a summary written before the training columns
        return (None,) * 6
    ci = block["diff_prev_ci95"] or [None, None]
    return (block["n"], block["mean"], block["std"], block["diff_prev"], ci[0], ci[1])


def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def difference_cell(before: list[float], after: list[float], scale: float = 100.0) -> str:
    """One table cell for ``mean(after) - mean(before)`` (times ``scale``) with Welch's 95%
    interval and whether it excludes 0, e.g. "+1.23 [+0.40, +2.06] yes (higher)"; "—" when
    either sample is empty. The report uses it for metrics other than test accuracy (mean
    corruption accuracy, ECE) between consecutive steps of a study."""
    if not before or not after:
        return "—"
    w = welch_difference(before, after, LEVEL)
    row = {
        "diff_ref": "previous",
        "diff_prev": w.diff,
        "diff_prev_ci95": list(w.ci) if w.ci is not None else None,
    }
    if w.ci is None:
        return f"{_f(w.diff * scale, True)} ({verdict(row)})"
    lo, hi = (v * scale for v in w.ci)
    return f"{_f(w.diff * scale, True)} [{_f(lo, True)}, {_f(hi, True)}] {verdict(row)}"


def verdict(row: dict[str, Any]) -> str:
    """ "yes (higher)" / "yes (lower)" when the difference's interval excludes 0, else 'no'."""
    if row["diff_ref"] is None:
        return "—"
    if row["diff_prev"] is None:
        return "n/a (no runs)"
    if row["diff_prev_ci95"] is None:
        return "n/a (n < 2)"
    lo, hi = row["diff_prev_ci95"]
    if lo > 0:
        return "yes (higher)"
    if hi < 0:
        return "yes (lower)"
    return "no (within noise)"


def to_markdown(summary: dict[str, Any]) -> str:
    """The table as Markdown, with what each column means and what is undefined."""
    rows = summary["rows"]
    with_ref = any(r["reference"] is not None for r in rows)
    mode = {"cumulative": "cumulative ablation", "leave-one-out": "leave-one-out ablation"}.get(
        summary["mode"], "seed study"
    )
    lines = [
        f"# {summary['name']}: {mode}, test accuracy (%)",
        "",
        f"Recipe `{summary['recipe']}`"
        + (f", ladder `{summary['ladder']}`" if summary["ladder"] else "")
        + f", seeds {', '.join(map(str, summary['seeds']))}.",
        "",
    ]
    head = ["step", "n", "mean ± std", "95% CI", "min", "max", "Δ (95% CI)", "vs", "beyond noise?"]
    if with_ref:
        head.append("report")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        if r["n"] == 0:
            stat = ["—", "—", "—", "—"]
        else:
            stat = [
                f"{_f(r['mean'])} ± {_f(r['std'])}"
                if r["std"] is not None
                else f"{_f(r['mean'])} ± n/a",
                f"[{_f(r['ci95'][0])}, {_f(r['ci95'][1])}]" if r["ci95"] else "n/a",
                _f(r["min"]),
                _f(r["max"]),
            ]
        if r["diff_prev"] is None:
            diff = "—"
        elif r["diff_prev_ci95"] is None:
            diff = f"{_f(r['diff_prev'], True)} (n/a)"
        else:
            lo, hi = r["diff_prev_ci95"]
            diff = f"{_f(r['diff_prev'], True)} [{_f(lo, True)}, {_f(hi, True)}]"
        n = f"{r['n']}" + (f" of {r['n_expected']}" if r["n"] != r["n_expected"] else "")
        cells = [f"`{r['step']}`", n, *stat, diff, r["diff_ref"] or "—", verdict(r)]
        if with_ref:
            cells.append(_f(r["reference"]) if r["reference"] is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "mean ± sample std (n − 1) over seeds; 95% CI: Student t interval for the mean; "
        "Δ: difference of means from the step in *vs*, with Welch's 95% t interval; "
        "*beyond noise*: that interval excludes 0.",
    ]
    if any(r["n"] == 1 for r in rows):
        lines.append(
            "n = 1: one run only, so its std and interval (and those of differences with it) "
            "are undefined (n/a)."
        )
    if summary["mode"] == "leave-one-out":
        lines.append(
            "Leave-one-out: `-<step>` is the final recipe without that step's changes; a negative Δ "
            "vs `final` means the change helps."
        )
    if with_ref:
        lines.append("report: the single-run test accuracy the seed report gives for that step.")
    if summary["missing"]:
        miss = ", ".join(f"{m['step']} seed {m['seed']}" for m in summary["missing"])
        lines.append(f"Not finished ({len(summary['missing'])}): {miss}.")
    lines += _training_markdown(rows)
    return "\n".join(lines) + "\n"


def _stat_cell(block: dict[str, Any]) -> str:
    if not block["n"]:
        return "—"
    spread = _f(block["std"]) if block["std"] is not None else "n/a"
    ci = f" [{_f(block['ci95'][0])}, {_f(block['ci95'][1])}]" if block["ci95"] else ""
    return f"{_f(block['mean'])} ± {spread}{ci}"


def _diff_cell(block: dict[str, Any]) -> str:
    if block["diff_prev"] is None:
        return "—"
    if block["diff_prev_ci95"] is None:
        return f"{_f(block['diff_prev'], True)} (n/a)"
    lo, hi = block["diff_prev_ci95"]
    return f"{_f(block['diff_prev'], True)} [{_f(lo, True)}, {_f(hi, True)}]"


def has_training(rows: list[dict[str, Any]]) -> bool:
    """Whether any summary row holds a final training accuracy or loss (a summary made from
    metrics alone, or written before the training columns, holds none)."""
    return any((r.get(key) or {}).get("n") for r in rows for key in TRAINING)


def _training_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The final training accuracy and loss per step, as a second table; nothing when no
    row has them."""
    if not has_training(rows):
        return []
    lines = [
        "",
        "## Final training accuracy (%) and loss",
        "",
        "| step | n | train accuracy, mean ± std [95% CI] | Δ (95% CI) | beyond noise? "
        "| train loss, mean ± std [95% CI] | Δ (95% CI) | beyond noise? | vs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc, loss = r["train_accuracy"], r["train_loss"]
        cells = [f"`{r['step']}`", str(max(acc["n"], loss["n"]))]
        for block in (acc, loss):
            judged = {"diff_ref": r["diff_ref"], **block}
            cells += [_stat_cell(block), _diff_cell(block), verdict(judged)]
        cells.append(r["diff_ref"] or "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "The last evaluation point of each run's history.json: the running mean over the "
        "training batches since the point before (augmented images, the weights still "
        "moving), as the run printed it, not a separate pass over the training set. "
        "Statistics and Δ as above (Welch's 95% t interval).",
    ]
    return lines
