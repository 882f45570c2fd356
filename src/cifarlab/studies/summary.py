"""A study's summary table: test accuracy per step as a distribution over seeds.

For each step: n (finished runs), mean, sample std, the 95% t interval for the
mean, min, max and the per-seed values (in seed order, in percent), and the
difference from its comparison step (the previous step of a cumulative ladder;
"final" for the "-<step>" rows of a leave-one-out study) with Welch's 95%
interval. "Beyond noise" means that interval excludes 0. Where n < 2 the std and
intervals are null, and the Markdown says so. The summary depends only on
study.json and the runs' metrics.json, so an interrupted-and-resumed study, a
merged set of shards and an uninterrupted study give identical summaries.
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
from cifarlab.studies import StudyError
from cifarlab.studies.figures import plot_study
from cifarlab.studies.spec import StudySpec, read_study
from cifarlab.studies.stats import summary_stats, welch_difference
from cifarlab.studies.studydir import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, StudyDir

SUMMARY_FORMAT = "cifarlab-study-summary"
LEVEL = 0.95


def collect(study_dir: str | Path, study: StudySpec) -> dict[str, dict[int, dict[str, Any]]]:
    """step -> seed -> that run's metrics.json, for the finished runs only."""
    where = StudyDir(study_dir)
    out: dict[str, dict[int, dict[str, Any]]] = {s.name: {} for s in study.steps}
    for run in study.runs():
        path = RunDir(where.run(run.step, run.seed)).metrics_path
        if not path.is_file():
            continue
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StudyError(
                f"{path}: damaged metrics ({exc}); delete the file to rerun the run"
            ) from None
        out[run.step][run.seed] = check_metrics(metrics, path)  # every number, one line
    return out


def summarize(study: StudySpec, results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """The summary dict (summary.json) from a study and its finished runs' metrics."""
    values: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    for k, step in enumerate(study.steps):
        done = results.get(step.name, {})
        seeds = [s for s in study.seeds if s in done]
        vals = [float(done[s]["test_accuracy"]) * 100.0 for s in seeds]
        values[step.name] = vals
        d = summary_stats(vals, LEVEL)
        ref = (
            step.diff_ref if step.diff_ref is not None else (study.steps[k - 1].name if k else None)
        )
        diff = diff_ci = beyond = None
        if ref is not None and vals and values.get(ref):
            w = welch_difference(values[ref], vals, LEVEL)
            diff = w.diff
            if w.ci is not None:
                diff_ci = list(w.ci)
                beyond = bool(w.ci[0] > 0 or w.ci[1] < 0)
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
    summary = summarize(study, results)
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
            ";".join(repr(v) for v in r["values"]),
        )
        w.writerow(["" if c is None else c for c in cells])
    return buf.getvalue()


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
    return "\n".join(lines) + "\n"
