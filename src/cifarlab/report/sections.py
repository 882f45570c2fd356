"""The report's sections, built from run and study directories, and the entry point.

A report follows the seed report's structure: data, model, training, calibration
(:mod:`cifarlab.report.calibration_section`), improvements (an ablation ladder), robustness (a
seed study) and a comparison of models.
:func:`build_document` turns run directories (``cifarlab train``) and study directories
(``cifarlab ablate`` / ``cifarlab seeds``), read by :mod:`cifarlab.report.inputs`, into a
:class:`~cifarlab.report.document.Document`; :func:`write_report` writes it with
:mod:`cifarlab.report.html` or :mod:`cifarlab.report.markdown`. A section whose inputs are
missing is left out, never shown empty. Nothing in the input directories is written.

    >>> from cifarlab.report.sections import write_report
    >>> write_report(["runs/ablation-seed-report"], "report.html")
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from cifarlab import __version__
from cifarlab.data import explore
from cifarlab.data.cache import source_origin
from cifarlab.figures import plot_confusion, plot_curves
from cifarlab.models import count_flops, count_parameters, create_model
from cifarlab.report import ReportError
from cifarlab.report.calibration_section import calibration_section
from cifarlab.report.charts import ablation_chart, comparison_chart, seed_chart
from cifarlab.report.corruptions_section import corruptions_section
from cifarlab.report.document import (
    Block,
    Document,
    Figure,
    Heading,
    Paragraph,
    Row,
    Section,
    Table,
)
from cifarlab.report.html import write_html
from cifarlab.report.inputs import RunInput, StudyInput, find_data, read_inputs
from cifarlab.report.markdown import write_markdown
from cifarlab.report.tune_section import tune_sections
from cifarlab.rundir import ACCURACY_FIGURE, CONFUSION_FIGURE, LOSS_FIGURE, RUN_FIGURES, RunDir
from cifarlab.studies.stats import mean

SECTIONS = (
    ("data", "Data"),
    ("model", "Model"),
    ("training", "Training"),
    ("calibration", "Calibration"),
    ("improvements", "Improvements"),
    ("robustness", "Robustness"),
    ("corruptions", "Corruption robustness"),
    ("comparison", "Comparison of models"),
    ("tune", "Hyperparameter search"),  # report/tune_section.py, one per tune directory
)
MAX_MODEL_TABLES = 4


# --------------------------------------------------------------------------- formatting


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}%"


def _num(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} (h:mm:ss)"


def _slug(text: str, limit: int = 80) -> str:
    """ASCII letters and digits joined by '-', at most ``limit`` long: a file stem and an id
    safe on any file system whatever a run's label holds."""
    out = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text.lower())
    return "-".join(p for p in out.split("-") if p)[:limit].rstrip("-") or "x"


class _Names:
    """Unique figure file stems within one document."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, stem: str) -> str:
        base = _slug(stem)
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}-{n}", n + 1
        self.used.add(name)
        return name


def _model_label(key: tuple[str, str]) -> str:
    name, options = key
    opts = json.loads(options)
    return name + (" (" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")" if opts else "")


# --------------------------------------------------------------------------- sections


def _median_run(runs: list[RunInput]) -> RunInput:
    scored = [r for r in runs if r.accuracy is not None]
    if not scored:
        return runs[0]
    scored.sort(key=lambda r: r.accuracy)
    return scored[(len(scored) - 1) // 2]


def featured_runs(runs: list[RunInput], studies: list[StudyInput]) -> list[RunInput]:
    """Runs shown in detail: each given run, and the median-seed run of each study's last step."""
    out = list(runs)
    for study in studies:
        steps = [s for s in study.step_names() if s in study.runs]
        if steps:
            out.append(_median_run(study.runs[steps[-1]]))
    return out


def data_section(featured: list[RunInput], data_dir: str | None, names: _Names) -> Section | None:
    metrics = [r.metrics for r in featured if r.metrics and r.metrics.get("data")]
    if not metrics:
        return None
    info = metrics[0]["data"]
    blocks: list[Block] = [Paragraph(f"Source: {info.get('source', 'unknown')}.")]
    # The same files read through another path spelling or cache entry are the same source.
    origins = [source_origin(str(m["data"].get("source", "unknown"))) for m in metrics]
    others = sorted(set(origins[1:]) - {origins[0]})
    if others:
        blocks.append(Paragraph("Other runs in this report used: " + "; ".join(others)))
    rows = [
        ["train", _num(info.get("n_train")), "model updates"],
        ["validation", _num(info.get("n_val")), "held out from the training set (stratified)"],
        ["test", _num(info.get("n_test")), "the official test set; reported accuracy"],
    ]
    split_table = Table(
        ["split", "images", "used for"],
        rows,
        caption="Images per split",
        numeric=[False, True, False],
    )
    data, why = find_data(info, featured, data_dir)
    if data is None:
        blocks.append(split_table)
        blocks.append(Paragraph(f"Example images and class histograms left out: {why}.", note=True))
        return Section("data", "Data", blocks)
    desc = explore.describe(data)
    per_class = [
        [c, _num(desc["train"]["per_class"][c]), _num(desc["test"]["per_class"][c])]
        for c in desc["classes"]
    ]
    blocks.append(
        Row(
            [
                split_table,
                Table(
                    ["class", "train + validation", "test"],
                    per_class,
                    caption="Images per class; each image "
                    f"{'×'.join(map(str, desc['image_shape']))} {desc['dtype']}",
                    numeric=[False, True, True],
                ),
            ]
        )
    )
    with tempfile.TemporaryDirectory(prefix="cifarlab-report-") as tmp:
        paths = {p.stem: p.read_bytes() for p in explore.write_figures(data, tmp)}
    for split in ("train", "test"):
        blocks.append(
            Row(
                [
                    Figure(
                        paths[f"{split}_examples"],
                        names(f"data-{split}-examples"),
                        f"{split.capitalize()} set: one image per class",
                    ),
                    Figure(
                        paths[f"{split}_class_counts"],
                        names(f"data-{split}-histogram"),
                        f"{split.capitalize()} set: images per class",
                    ),
                ]
            )
        )
    return Section("data", "Data", blocks)


def layer_table(model_name: str, options: dict[str, Any], num_classes: int = 10) -> Table:
    """Each leaf layer in call order on a 1×3×32×32 input: type, settings, output shape, parameters."""
    model = create_model(model_name, num_classes=num_classes, **options).eval()
    calls: list[tuple[str, torch.nn.Module, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or isinstance(module, torch.nn.Identity):
            continue

        def hook(mod, _inp, out, name=name):
            tensor = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(tensor, torch.Tensor):
                calls.append((name, mod, tuple(tensor.shape[1:])))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    rows = [["", "input", "", "3×32×32", "0"]]
    counted: set[int] = set()
    for name, mod, shape in calls:
        params = 0
        if id(mod) not in counted:
            counted.add(id(mod))
            params = sum(p.numel() for p in mod.parameters(recurse=False))
        rows.append(
            [
                name,
                type(mod).__name__,
                mod.extra_repr(),
                "×".join(map(str, shape)) or "scalar",
                _num(params),
            ]
        )
    total = count_parameters(model)
    listed = sum(
        p.numel() for m in {id(m): m for _, m, _ in calls}.values() for p in m.parameters(False)
    )
    if listed != total:
        rows.append(
            ["(other)", "parameters outside the listed layers", "", "", _num(total - listed)]
        )
    rows.append(["", "total", "", "", _num(total)])
    return Table(
        ["layer", "type", "settings", "output shape", "parameters"],
        rows,
        caption=f"{_model_label((model_name, json.dumps(options, sort_keys=True)))}: "
        f"layers in call order, output shape per image",
        numeric=[False, False, False, True, True],
    )


def model_section(featured: list[RunInput], studies: list[StudyInput]) -> Section | None:
    keys: list[tuple[str, str]] = []
    candidates = list(featured)
    for study in studies:  # an ablation's first step is the model it started from
        steps = [s for s in study.step_names() if s in study.runs]
        if study.kind == "ablation" and steps:
            candidates.insert(0, study.runs[steps[0]][0])
    for run in candidates:
        key = run.model_key
        if key and key not in keys:
            keys.append(key)
    if not keys:
        return None
    blocks: list[Block] = []
    for key in keys[:MAX_MODEL_TABLES]:
        name, options = key[0], json.loads(key[1])
        classes = next(
            (
                len(r.metrics["classes"])
                for r in candidates
                if r.model_key == key and r.metrics and r.metrics.get("classes")
            ),
            10,
        )
        blocks.append(Heading(_model_label(key), level=3))
        try:
            table = layer_table(name, options, classes)
            flops = count_flops(create_model(name, num_classes=classes, **options))
        except Exception as exc:  # a model we cannot build here: say so, keep the report going
            blocks.append(
                Paragraph(f"Layer table left out: {type(exc).__name__}: {exc}", note=True)
            )
            continue
        blocks.append(table)
        blocks.append(Paragraph(f"Forward cost: {flops / 1e6:,.1f} MFLOPs per 32×32 image."))
    if len(keys) > MAX_MODEL_TABLES:
        blocks.append(
            Paragraph(
                f"{len(keys) - MAX_MODEL_TABLES} further model configurations not shown.", note=True
            )
        )
    return Section("model", "Model", blocks)


def _run_summary(run: RunInput) -> list[tuple[str, str]]:
    m = run.metrics or {}
    prov = m.get("provenance") or {}
    rec = run.recipe or {}
    pairs = [
        ("run directory", str(run.path)),
        ("recipe", str(m.get("recipe") or rec.get("name") or "—")),
        ("model", f"{m.get('model', '—')} ({_num(m.get('parameters'))} parameters)"),
        ("seed", str(m.get("seed", rec.get("seed", "—")))),
    ]
    if m:
        pairs += [
            ("test accuracy", _pct(run.accuracy) + f" on {_num(m.get('test_count'))} images"),
        ]
        if m.get("test_accuracy_tta") is not None:
            pairs.append(
                (f"test accuracy ({m.get('tta')} TTA)", _pct(m["test_accuracy_tta"] * 100))
            )
        pairs += [
            ("test loss", f"{m['test_loss']:.4f}" if m.get("test_loss") is not None else "—"),
            (
                "final validation accuracy",
                _pct(m["val_accuracy"] * 100) if m.get("val_accuracy") is not None else "—",
            ),
            ("training", f"{_num(m.get('steps'))} steps, {m.get('epochs', 0):.2f} epochs"),
            ("training time", _secs(m.get("train_time_s"))),
            ("throughput", f"{_num(m.get('images_per_s'))} images/s"),
            ("device", f"{prov.get('device', '—')} ({prov.get('device_name', '—')})"),
            (
                "software",
                f"cifarlab {prov.get('cifarlab', '—')}, torch {prov.get('torch', '—')}, "
                f"git {prov.get('git_commit', '—')}",
            ),
        ]
    else:
        pairs.append(("status", "unfinished: no metrics.json yet; curves from the checkpoint"))
    return pairs


FIGURE_CAPTIONS = {
    LOSS_FIGURE: "Train (running) and validation loss",
    ACCURACY_FIGURE: "Train (running) and validation accuracy",
    CONFUSION_FIGURE: "Confusion matrix on the test set (rows: true class)",
}


def _run_figures(run: RunInput, names: _Names) -> dict[str, Figure]:
    """The run's figures by file name (rundir.RUN_FIGURES): its own PNGs, else drawn from its
    history and metrics."""
    got = {name: png for name in RUN_FIGURES if (png := run.figure(name)) is not None}
    missing = [name for name in RUN_FIGURES if name not in got]
    if missing:
        with tempfile.TemporaryDirectory(prefix="cifarlab-report-") as tmp:
            drawn = RunDir(tmp)  # the figures drawn under the names a run gives them
            curves = LOSS_FIGURE in missing or ACCURACY_FIGURE in missing
            if curves and run.history and run.history.get("step"):
                for p in plot_curves(
                    run.history, drawn.loss_figure_path, drawn.accuracy_figure_path, title=run.label
                ):
                    got.setdefault(p.name, p.read_bytes())
            m = run.metrics or {}
            if CONFUSION_FIGURE in missing and m.get("confusion") and m.get("classes"):
                p = plot_confusion(m["confusion"], m["classes"], drawn.confusion_figure_path)
                got[CONFUSION_FIGURE] = p.read_bytes()
    return {
        name: Figure(got[name], names(f"{run.label}-{Path(name).stem}"), FIGURE_CAPTIONS[name])
        for name in RUN_FIGURES
        if name in got
    }


def training_section(featured: list[RunInput], names: _Names) -> Section | None:
    if not featured:
        return None
    blocks: list[Block] = []
    if len(featured) > 1:
        rows = []
        for r in featured:
            m = r.metrics or {}
            rows.append(
                [
                    r.label,
                    str(m.get("model", "—")),
                    str(m.get("seed", "—")),
                    _pct(r.accuracy),
                    _secs(m.get("train_time_s")),
                    str((m.get("provenance") or {}).get("device", "—")),
                ]
            )
        blocks.append(
            Table(
                ["run", "model", "seed", "test accuracy", "training time", "device"],
                rows,
                caption="Runs shown in detail below",
                numeric=[False, False, True, True, True, False],
            )
        )
    for run in featured:
        blocks.append(Heading(run.label, level=3, id=f"run-{_slug(run.label)}"))
        pairs = _run_summary(run)
        blocks.append(Table(["", ""], [[k, v] for k, v in pairs], caption="Final metrics"))
        figs = _run_figures(run, names)
        curves = [figs[n] for n in (LOSS_FIGURE, ACCURACY_FIGURE) if n in figs]
        if curves:
            blocks.append(Row(curves))
        m = run.metrics or {}
        per_class = m.get("per_class_accuracy")
        confusion = figs.get(CONFUSION_FIGURE)
        if per_class:
            counts = m.get("confusion")
            rows = []
            for i, (cls, acc) in enumerate(per_class.items()):
                total = sum(counts[i]) if counts and i < len(counts) else None
                right = counts[i][i] if counts and i < len(counts) else None
                rows.append([cls, _pct(acc * 100, 1), f"{right} / {total}" if total else "—"])
            table = Table(
                ["class", "test accuracy", "correct / images"],
                rows,
                caption="Per-class test accuracy",
                numeric=[False, True, True],
            )
            blocks.append(Row([table, confusion]) if confusion else table)
        elif confusion:
            blocks.append(confusion)
    return Section("training", "Training", blocks)


def improvements_section(studies: list[StudyInput], names: _Names) -> Section | None:
    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "ablation"):
        rows = study.rows()
        if not rows:
            continue
        ref = study.references()
        changes = {s.name: s.changes for s in study.spec.steps}
        show_ref = any(r["step"] in ref for r in rows)
        leave_one_out = study.spec.mode == "leave-one-out"
        columns = [
            "step",
            "change" if not leave_one_out else "left out (value instead)",
            "n",
            "mean ± std",
            "95% CI",
            "Δ vs final (95% CI)" if leave_one_out else "Δ previous (95% CI)",
        ]
        if show_ref:
            columns.append("seed report")
        table_rows = []
        for r in rows:
            diff, dci = r["diff_prev"], r["diff_prev_ci95"]
            cells = [
                r["step"],
                _changes(changes.get(r["step"])),
                _n_of(r),
                f"{r['mean']:.2f} ± {r['std']:.2f}" if r["std"] is not None else f"{r['mean']:.2f}",
                _ci(r["ci95"]),
                "—"
                if diff is None
                else f"{diff:+.2f}" + (f" ({_ci(dci, signed=True)})" if dci else ""),
            ]
            if show_ref:
                cells.append(_pct(ref.get(r["step"])))
            table_rows.append(cells)
        blocks.append(Heading(study.name, level=3))
        spec = study.spec
        desc = (
            f"Ladder {spec.ladder or '—'} on recipe {spec.recipe}, trained with seeds "
            f"{', '.join(map(str, spec.seeds))}; test accuracy in percent. "
            + (
                "Each row is the final recipe with one step's changes left out, compared with "
                "the final recipe."
                if leave_one_out
                else "Each step adds its changes to the step before it."
            )
        )
        if show_ref:
            desc += " The last column is the seed report's single-run number for the same step."
        blocks.append(Paragraph(desc))
        blocks.append(
            Table(
                columns,
                table_rows,
                caption=f"Ablation: {study.name}",
                numeric=[False, False, True, True, True, True, True],
            )
        )
        blocks.append(
            Figure(
                ablation_chart(rows, ref if show_ref else None),
                names(f"{study.name}-ablation"),
                "Mean test accuracy per step (bars), 95% CI, each seed (dots)"
                + (", the seed report's number (diamonds)" if show_ref else ""),
            )
        )
    return Section("improvements", "Improvements", blocks) if blocks else None


def _changes(changes: dict[str, Any] | None) -> str:
    if not changes:
        return "—"
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in changes.items())


def _ci(ci: list[float] | None, signed: bool = False) -> str:
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return "—"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f"{fmt.format(ci[0])} to {fmt.format(ci[1])}"


def _n_of(row: dict[str, Any]) -> str:
    """The runs behind a row: "3", or "2 of 3" while some of the study's seeds are unfinished."""
    n, planned = row["n"], row["n_expected"]
    return f"{n} of {planned}" if planned > n else str(n)


def robustness_section(studies: list[StudyInput], names: _Names) -> Section | None:
    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "seeds"):
        summary = {r["step"]: r for r in study.rows()}
        for step in study.step_names():
            runs = study.runs.get(step, [])
            row = summary.get(step)
            if not runs and not row:
                continue
            title = study.name if len(study.runs) <= 1 else f"{study.name}: {step}"
            blocks.append(Heading(title, level=3))
            if row:
                blocks.append(Paragraph(_seed_summary(row)))
            if runs:
                blocks += _seed_runs(study, step, runs, names)
    return Section("robustness", "Robustness", blocks) if blocks else None


def _seed_summary(row: dict[str, Any]) -> str:
    """One sentence: how many seeds, mean ± std, 95% CI and range of a summary row."""
    if row["std"] is None:
        return f"Test accuracy {row['mean']:.2f}%."
    n, planned = row["n"], row["n_expected"]
    seeds = (
        f"{n} of {planned} planned seeds (the study is not finished: rerun its command to "
        f"train the rest)"
        if planned > n
        else f"{n} seeds"
    )
    return (
        f"{seeds}: test accuracy {row['mean']:.2f}% ± {row['std']:.2f} (std)"
        + (f", 95% CI {_ci(row['ci95'])}" if row["ci95"] else "")
        + f", range {row['min']:.2f} to {row['max']:.2f}."
    )


def _seed_runs(study: StudyInput, step: str, runs: list[RunInput], names: _Names) -> list[Block]:
    """A table of one seed study step's runs, and their curves and accuracies as a figure."""
    rows = []
    for r in runs:
        m = r.metrics or {}
        rows.append(
            [
                str(m.get("seed", r.path.name)),
                _pct(r.accuracy),
                _pct(m["val_accuracy"] * 100) if m.get("val_accuracy") is not None else "—",
                _secs(m.get("train_time_s")),
                str(r.path.relative_to(study.path)),
            ]
        )
    blocks: list[Block] = [
        Table(
            ["seed", "test accuracy", "final validation accuracy", "training time", "run"],
            rows,
            caption="One run per seed, identical recipe otherwise",
            numeric=[True, True, True, True, False],
        )
    ]
    label = {id(r): f"seed {(r.metrics or {}).get('seed', r.path.name)}" for r in runs}
    histories = {label[id(r)]: r.history for r in runs if r.history}
    accs = {label[id(r)]: r.accuracy for r in runs if r.accuracy is not None}
    if histories or accs:
        blocks.append(
            Figure(
                seed_chart(histories, accs),
                names(f"{study.name}-{step}-seeds"),
                "Validation accuracy of every seed (left); test accuracy per seed "
                "with mean and ±1 std band (right)",
            )
        )
    return blocks


def _mean_given(metrics: list[dict[str, Any]], key: str) -> float | None:
    """The mean of ``key`` over the metrics that give it (a truthy value); None if none do."""
    values = [m[key] for m in metrics if m.get(key)]
    return mean(values) if values else None


def comparison_points(runs: list[RunInput], studies: list[StudyInput]) -> list[dict[str, Any]]:
    """One point per given run and per study step (the summary's mean over its seeds)."""
    points = []
    for r in runs:
        m = r.metrics or {}
        if r.accuracy is None:
            continue
        points.append(
            {
                "label": r.label,
                "model": m.get("model"),
                "accuracy": r.accuracy,
                "std": None,
                "n": 1,
                "train_time_s": m.get("train_time_s"),
                "wall_time_s": m.get("wall_time_s"),
                "parameters": m.get("parameters"),
                "images_per_s": m.get("images_per_s"),
                "device": (m.get("provenance") or {}).get("device"),
            }
        )
    for study in studies:
        for row in study.rows():
            step = row["step"]
            done = [r.metrics for r in study.runs.get(step, []) if r.accuracy is not None]
            points.append(
                {
                    "label": f"{study.name}/{step}" if len(studies) > 1 or runs else step,
                    "model": done[0].get("model"),
                    "accuracy": row["mean"],
                    "std": row["std"],
                    "n": row["n"],
                    "train_time_s": _mean_given(done, "train_time_s"),
                    "wall_time_s": _mean_given(done, "wall_time_s"),
                    "parameters": done[0].get("parameters"),
                    "images_per_s": _mean_given(done, "images_per_s"),
                    "device": (done[0].get("provenance") or {}).get("device"),
                }
            )
    return points


def comparison_section(
    runs: list[RunInput], studies: list[StudyInput], names: _Names
) -> Section | None:
    points = comparison_points(runs, studies)
    if len(points) < 2:
        return None
    rows = [
        [
            p["label"],
            str(p["model"] or "—"),
            _num(p["parameters"]),
            _pct(p["accuracy"]) + (f" ± {p['std']:.2f}" if p["std"] is not None else ""),
            str(p["n"]),
            _secs(p["train_time_s"]),
            _secs(p["wall_time_s"]),
            _num(p["images_per_s"]),
            str(p["device"] or "—"),
        ]
        for p in points
    ]
    best = max(points, key=lambda p: p["accuracy"])
    text = (
        f"Highest test accuracy: {best['label']} ({best['model']}, {_pct(best['accuracy'])}, "
        f"{_num(best['parameters'])} parameters, {_secs(best['train_time_s'])} of training)."
    )
    timed = [p for p in points if p["train_time_s"]]
    if timed:
        close = [p for p in timed if p["accuracy"] >= best["accuracy"] - 1.0]
        fastest = min(close or timed, key=lambda p: p["train_time_s"])
        if fastest is not best:
            text += (
                f" Fastest within one point of it: {fastest['label']} "
                f"({_pct(fastest['accuracy'])} in {_secs(fastest['train_time_s'])})."
            )
    blocks: list[Block] = [
        Paragraph(
            "The seed report closed by asking whether residual networks beat plain ConvNets; "
            "here every model in this report is set against what it costs. " + text
        ),
        Table(
            [
                "run",
                "model",
                "parameters",
                "test accuracy",
                "n",
                "training time",
                "run time",
                "images/s",
                "device",
            ],
            rows,
            caption=(
                "Models compared (studies: mean over seeds ± std). Training time counts the "
                "training steps; run time the whole run: data loading, initialisation, "
                "training, evaluations, test-time augmentation and the run's files (of the "
                "last start, for a resumed run)"
            ),
            numeric=[False, False, True, True, True, True, True, True, False],
        ),
        Figure(
            comparison_chart(points),
            names("comparison"),
            "Test accuracy against run time (left: the whole run where every point has it, "
            "else training time) and parameters (right)",
        ),
    ]
    return Section("comparison", "Comparison of models", blocks)


# --------------------------------------------------------------------------- the document


def build_document(
    paths: list[str | Path], *, data_dir: str | None = None, title: str | None = None
) -> Document:
    """Read run/study directories and build the report's sections (missing ones left out)."""
    runs, studies = read_inputs(paths)
    featured = featured_runs(runs, studies)
    names = _Names()
    sections = [
        data_section(featured, data_dir, names),
        model_section(featured, studies),
        training_section(featured, names),
        calibration_section(featured, studies, names),
        improvements_section(studies, names),
        robustness_section(studies, names),
        corruptions_section(featured, studies, names),
        comparison_section(runs, studies, names),
        *tune_sections(paths, names),
    ]
    meta = [
        ("generated", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("by", f"cifarlab {__version__}"),
        ("inputs", ", ".join(str(p) for p in paths)),
    ]
    if title is None:
        if len(paths) == 1:
            title = f"cifarlab report: {Path(paths[0]).resolve().name}"
        else:
            title = f"cifarlab report: {len(paths)} inputs"
    return Document(title=title, meta=meta, sections=[s for s in sections if s and s.blocks])


def write_report(
    paths: list[str | Path],
    out: str | Path,
    fmt: str | None = None,
    *,
    data_dir: str | None = None,
    title: str | None = None,
) -> Path:
    """Build the report of ``paths`` and write it to ``out`` as HTML (default) or Markdown."""
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() in (".md", ".markdown") else "html")
    if fmt not in ("html", "md"):
        raise ReportError(f"--format {fmt!r}: choose html or md")
    doc = build_document(paths, data_dir=data_dir, title=title)
    return write_html(doc, out) if fmt == "html" else write_markdown(doc, out)
