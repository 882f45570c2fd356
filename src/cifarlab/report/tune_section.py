"""The report's hyperparameter-search section: one per tune directory (``cifarlab tune``).

Read from the directory alone (tune.json, summary.json, confirm.json through
:func:`cifarlab.tune.results.read_tune_dir`; no database, no Optuna): what was searched and
how, the pruned/complete/failed counts, the optimisation history, Optuna's parameter-
importance ranking (computed by the search, PED-ANOVA), validation accuracy against each
parameter, the best trials, and the confirmation on the test set with its verdict. Figures
are matplotlib PNGs; nothing in the report runs JavaScript.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cifarlab.plotting import figure, plain, render
from cifarlab.report import ReportError
from cifarlab.report.document import Block, Figure, Paragraph, Section, Table
from cifarlab.stored import StoredValueError, field, mapping, number
from cifarlab.tune.results import (
    CONFIRM_JSON,
    STATES,
    SUMMARY_JSON,
    TuneDir,
    TuneResult,
    is_tune_dir,
    read_tune_dir,
)

TOP_TRIALS = 10
COLOURS = {"complete": "tab:blue", "pruned": "tab:orange", "failed": "tab:red"}


def tune_sections(paths: list[str | Path], names) -> list[Section]:
    """A section for each tune directory among ``paths`` (the others are runs and studies)."""
    found = [Path(p) for p in paths if is_tune_dir(p)]
    tunes = [read_tune_dir(p, ReportError) for p in found]
    for tune in tunes:
        if tune.summary is not None:
            check_summary(tune.summary, TuneDir(tune.path).file(SUMMARY_JSON))
        if tune.confirm is not None:
            check_confirm(tune.confirm, TuneDir(tune.path).file(CONFIRM_JSON))
    return [tune_section(tune, names, len(found) > 1) for tune in tunes]


def check_confirm(c: dict[str, Any], path: Path) -> None:
    """The numbers of a confirm.json this section shows: test accuracies in percent, their
    spread and interval, the difference (-100 to 100); else one line naming the field."""
    if c.get("start") is None:
        return
    for side in ("start", "tuned"):
        s = mapping(c.get(side), path, side)
        number(s.get("n"), path, f"{side}.n", low=0, integer=True)
        field(s, "mean", path, f"{side}.", low=0.0, high=100.0)
        field(s, "std", path, f"{side}.", low=0.0)
        for i, v in enumerate(s.get("values") or []):
            number(v, path, f"{side}.values[{i}]", low=0.0, high=100.0)
        for i, v in enumerate(s.get("ci95") or []):
            number(v, path, f"{side}.ci95[{i}]")
    field(c, "diff", path, low=-100.0, high=100.0)
    for i, v in enumerate(c.get("ci95") or []):
        number(v, path, f"ci95[{i}]")


def check_summary(s: dict[str, Any], path: Path) -> None:
    """The numbers of a summary.json this section uses, read back: one line naming the file
    and field for a wrong type, a non-finite value or one out of range (cifarlab.stored).
    Trial values are validation accuracies in percent; intermediate points are (position
    per mille, accuracy %)."""
    for key, value in mapping(s.get("counts"), path, "counts").items():
        number(value, path, f"counts.{key}", low=0, integer=True)
    pruner = mapping(s.get("pruner"), path, "pruner")
    field(pruner, "warmup", path, "pruner.", low=0.0, high=1.0)
    field(pruner, "startup", path, "pruner.", low=0, integer=True)
    if not isinstance(s.get("space"), list) or not isinstance(s.get("trials"), list):
        raise StoredValueError(f"{path}: space and trials must be lists; fix or remove the file")
    for i, raw in enumerate(s["trials"]):
        t = mapping(raw, path, f"trials[{i}]")
        where = f"trials[{i}]."
        number(t.get("number"), path, where + "number", low=0, integer=True)
        if t.get("state") not in STATES:
            raise StoredValueError(
                f"{path}: {where}state is {t.get('state')!r}, not one of {', '.join(STATES)}; "
                f"fix or remove the file"
            )
        field(t, "value", path, where, low=0.0, high=100.0)
        field(t, "seed", path, where, low=0, integer=True)
        field(t, "duration_s", path, where, low=0.0)
        points = t.get("intermediate") or []
        if not isinstance(points, list):
            raise StoredValueError(f"{path}: {where}intermediate is not a list; fix the file")
        for j, point in enumerate(points):
            if not isinstance(point, list) or len(point) != 2:
                raise StoredValueError(
                    f"{path}: {where}intermediate[{j}] is not a [position, value] pair"
                )
            number(point[0], path, f"{where}intermediate[{j}][0]", low=0, integer=True)
            number(point[1], path, f"{where}intermediate[{j}][1]", low=0.0, high=100.0)
    best = s.get("best")
    if best:
        field(mapping(best, path, "best"), "value", path, "best.", low=0.0, high=100.0)
    values = (s.get("importance") or {}).get("values") or {}
    for key, value in mapping(values, path, "importance.values").items():
        number(value, path, f"importance.values.{key}", low=0.0, high=1.0)


def tune_section(tune: TuneResult, names, several: bool = False) -> Section:
    title = "Hyperparameter search" + (f": {tune.name}" if several else "")
    sid = "tune" if not several else f"tune-{names(tune.name)}"
    s = tune.summary
    if s is None:
        blocks: list[Block] = [
            Paragraph(f"Study {tune.name}: no trial has finished yet ({tune.path}).", note=True)
        ]
        return Section(sid, title, blocks)
    c = s["counts"]
    pruner = s["pruner"]
    prune = (
        "no pruning"
        if pruner["name"] == "none"
        else f"the {pruner['name']} pruner (never in the first {pruner['warmup']:.0%} of a run"
        + (f", after {pruner['startup']} complete trials" if pruner["name"] == "median" else "")
        + ")"
    )
    overrides = tune.spec.get("overrides") or {}
    blocks = [
        Paragraph(
            f"Optuna study {s['study']} ({s['storage']}): {len(s['space'])} fields of the "
            f"recipe {s['recipe']}"
            + (" with " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "")
            + f" searched by TPE with {prune}, toward {s['target_trials']} finished trials. "
            f"Objective: {s['objective']}; the test set is used only by the confirmation. "
            + (
                "Each trial trains with seed (recipe seed + trial number)."
                if s["vary_seed"]
                else "Every trial trains with the recipe's seed."
            )
        ),
        Table(
            ["complete", "pruned", "failed (error)", "failed (killed, retried)", "running"],
            [
                [
                    str(c["complete"]),
                    str(c["pruned"]),
                    str(c["failed_error"]),
                    str(c["failed_killed"]),
                    str(c["running"]),
                ]
            ],
            caption="Trials by state",
            numeric=[True] * 5,
        ),
        _space_table(s),
    ]
    trials = s["trials"]
    if any(t["intermediate"] or t["value"] is not None for t in trials):
        blocks.append(
            Figure(
                history_chart(trials),
                names(f"{s['study']}-history"),
                "Optimisation history: final validation accuracy of each trial (pruned: its last "
                "reported value) and the best so far (left); validation accuracy at each "
                "evaluation point against the position in the run (right)",
            )
        )
    blocks.append(_importance(s))
    complete = [t for t in trials if t["state"] == "complete"]
    if complete:
        blocks.append(
            Figure(
                parameter_chart(s["space"], trials),
                names(f"{s['study']}-parameters"),
                "Final validation accuracy against each searched field (complete trials; the "
                "best circled, trial 0, the starting recipe, as a diamond)",
            )
        )
        blocks.append(_best_table(s, complete))
    blocks += confirmation_blocks(tune.confirm)
    return Section(sid, title, blocks)


# --------------------------------------------------------------------------- tables


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _space_table(s: dict[str, Any]) -> Table:
    best = (s.get("best") or {}).get("params", {})
    rows = [
        [e["field"], e["describe"], _fmt(e["start"]), _fmt(best.get(e["field"]))]
        for e in s["space"]
    ]
    return Table(
        ["field", "distribution", "starting recipe", "best trial"],
        rows,
        caption="The search space",
    )


def _importance(s: dict[str, Any]) -> Block:
    imp = s.get("importance") or {}
    values = imp.get("values")
    if not values:
        return Paragraph(
            f"Parameter importance: not computed ({imp.get('note', 'no complete trials')}).",
            note=True,
        )
    rows = [
        [str(k), field, f"{v:.3f}"]
        for k, (field, v) in enumerate(sorted(values.items(), key=lambda kv: -kv[1]), 1)
    ]
    return Table(
        ["rank", "field", "importance"],
        rows,
        caption=f"Parameter importance over {imp.get('n_trials')} complete trials: "
        f"{imp.get('evaluator')}; shares summing to 1",
        numeric=[True, False, True],
    )


def _best_table(s: dict[str, Any], complete: list[dict[str, Any]]) -> Table:
    fields = [e["field"] for e in s["space"]]
    top = sorted(complete, key=lambda t: (-t["value"], t["number"]))[:TOP_TRIALS]
    rows = [
        [str(t["number"]) + (" (start)" if t["start"] else ""), f"{t['value']:.2f}%"]
        + [_fmt(t["params"].get(f)) for f in fields]
        + [str(t["seed"]), _fmt(t["duration_s"])]
        for t in top
    ]
    return Table(
        ["trial", "validation accuracy", *fields, "seed", "seconds"],
        rows,
        caption=f"The best {len(top)} complete trials",
        numeric=[True, True, *([False] * len(fields)), True, True],
    )


def confirmation_blocks(confirm: dict[str, Any] | None) -> list[Block]:
    """The confirmation table and its verdict (nothing without --confirm)."""
    if confirm is None:
        return [
            Paragraph(
                "No confirmation yet: rerun with --confirm K to train the best and the starting "
                "recipe with K seeds each and compare them on the test set.",
                note=True,
            )
        ]
    blocks: list[Block] = []
    if confirm.get("start") is not None:
        rows = []
        for side, label in ((confirm["start"], "starting recipe"), (confirm["tuned"], "tuned")):
            std = f" ± {side['std']:.2f}" if side["std"] is not None else ""
            ci = f"[{side['ci95'][0]:.2f}, {side['ci95'][1]:.2f}]" if side["ci95"] else "n/a"
            rows.append(
                [
                    f"{label} ({side['dir']})",
                    str(side["n"]),
                    f"{side['mean']:.2f}{std}",
                    ci,
                    ", ".join(f"{v:.2f}" for v in side["values"]),
                ]
            )
        d, ci = confirm["diff"], confirm["ci95"]
        rows.append(
            [
                "difference (tuned − start)",
                "",
                f"{d:+.2f}",
                f"[{ci[0]:+.2f}, {ci[1]:+.2f}] (Welch)" if ci else "n/a",
                "",
            ]
        )
        blocks.append(
            Table(
                ["recipe", "n", "test accuracy % (mean ± std)", "95% CI", "per seed"],
                rows,
                caption=f"Confirmation on the test set: trial {confirm['number']} against the "
                f"starting recipe, seeds {confirm['seeds'][0]}–{confirm['seeds'][-1]}",
                numeric=[False, True, True, False, False],
            )
        )
    blocks.append(Paragraph(confirm["verdict"]))
    return blocks


# --------------------------------------------------------------------------- figures


def _final(t: dict[str, Any]) -> float | None:
    """A trial's value on the history plot: its objective, or a pruned trial's last report."""
    if t["value"] is not None:
        return t["value"]
    if t["state"] == "pruned" and t["intermediate"]:
        return t["intermediate"][-1][1]
    return None


def history_chart(trials: list[dict[str, Any]]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig, axes = figure(11, 4.2, 1, 2, squeeze=False)
    left, right = axes[0]
    best, xs, ys = -math.inf, [], []
    for state, marker in (("complete", "o"), ("pruned", "x")):
        pts = [
            (t["number"], _final(t))
            for t in trials
            if t["state"] == state and _final(t) is not None
        ]
        if pts:
            left.plot(*zip(*pts, strict=True), marker, color=COLOURS[state], label=state, ls="")
    for t in sorted(trials, key=lambda t: t["number"]):
        if t["state"] == "complete":
            best = max(best, t["value"])
        if best > -math.inf:
            xs.append(t["number"])
            ys.append(best)
    if xs:
        left.step(xs, ys, where="post", color="black", lw=1, label="best so far")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("trial")
    left.set_ylabel("validation accuracy (%)")
    left.legend(loc="best", fontsize=8)
    left.grid(alpha=0.3)
    for t in trials:
        pts = t["intermediate"]
        if not pts or t["state"] not in COLOURS:
            continue
        right.plot(
            [p / 10 for p, _ in pts],
            [v for _, v in pts],
            "-",
            marker=".",
            color=COLOURS[t["state"]],
            alpha=0.7 if t["state"] == "complete" else 0.5,
            lw=1,
        )
    right.set_xlabel("position in the run (%)")
    right.set_ylabel("validation accuracy (%)")
    right.set_xlim(0, 100)
    right.grid(alpha=0.3)
    return render(fig)


def parameter_chart(space: list[dict[str, Any]], trials: list[dict[str, Any]]) -> bytes:
    n = len(space)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = figure(3.6 * ncols, 3.0 * nrows, nrows, ncols, squeeze=False)
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: (t["value"], -t["number"]))
    for i, entry in enumerate(space):
        ax = axes[i // ncols][i % ncols]
        field, (kind, spec) = entry["field"], next(iter(entry["distribution"].items()))
        pts = [(t["params"].get(field), t["value"], t) for t in complete if field in t["params"]]
        if kind == "choice":
            pos = {repr(c): k for k, c in enumerate(spec)}
            ax.set_xticks(range(len(spec)), [plain(c) for c in spec])
            ax.set_xlim(-0.5, len(spec) - 0.5)

            def where(v, pos=pos):
                return pos.get(repr(v), 0)
        else:

            def where(v):
                return v

            if kind == "log_uniform":
                ax.set_xscale("log")
        ax.plot([where(x) for x, _, _ in pts], [y for _, y, _ in pts], "o", color="tab:blue", ms=4)
        for x, y, t in pts:
            if t is best:
                ax.plot(where(x), y, "o", ms=11, mfc="none", mec="black")
            if t["start"]:
                ax.plot(where(x), y, "D", ms=6, mfc="none", mec="tab:green")
        ax.set_title(plain(field), fontsize=9)
        ax.set_ylabel("validation accuracy (%)", fontsize=8)
        ax.grid(alpha=0.3)
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    return render(fig)
