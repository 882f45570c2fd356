"""The report as a document: read run and study directories, build its sections.

A report follows the seed report's structure: data, model, training,
improvements (an ablation ladder), robustness (a seed study) and a comparison of
models. :func:`build_document` turns run directories (``cifarlab train``) and
study directories (``cifarlab ablate`` / ``cifarlab seeds``) into a
:class:`Document` of plain blocks (headings, paragraphs, tables, PNG figures);
:mod:`cifarlab.report.html` and :mod:`cifarlab.report.markdown` render it. A
section whose inputs are missing is left out, never shown empty. Nothing in the
input directories is written.

    >>> from cifarlab.report.sections import write_report
    >>> write_report(["runs/ablation-seed-report"], "report.html")
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.errors import CifarlabError

# The seed report's own test accuracies (%) for the `seed-report` ladder (report 1.3.4-1.3.5e),
# keyed by the ladder's step names: shown beside our numbers in the improvements section.
SEED_REPORT_LADDER = "seed-report"
SEED_REPORT_ACCURACY: dict[str, float] = {
    "baseline": 71.77,  # 1.3.4: seednet, Adam lr 1e-3, 10 epochs
    "weight-decay": 72.89,  # 1.3.5a: Adam L2 weight decay 1e-5
    "dropout": 74.45,  # 1.3.5b: dropout 0.5, 25 epochs
    "augment": 75.50,  # 1.3.5c: horizontal flip + colour jitter
    "no-bias": 76.63,  # 1.3.5d: no biases
    "batch-norm": 77.70,  # 1.3.5e: batch norm, lr 7e-4
}

SECTIONS = (
    ("data", "Data"),
    ("model", "Model"),
    ("training", "Training"),
    ("improvements", "Improvements"),
    ("robustness", "Robustness"),
    ("comparison", "Comparison of models"),
)
RUN_FIGURES = ("loss.png", "accuracy.png", "confusion.png")
MAX_MODEL_TABLES = 4


class ReportError(CifarlabError):
    """A report input is not a run or study directory, or the output cannot be written."""


# --------------------------------------------------------------------------- document blocks


@dataclass
class Heading:
    text: str
    level: int = 3
    id: str = ""


@dataclass
class Paragraph:
    text: str
    note: bool = False  # a muted remark (why something is left out, where numbers come from)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: list[bool] = field(default_factory=list)  # right-align these columns


@dataclass
class Figure:
    png: bytes
    name: str  # a file stem, unique in the document (the Markdown writer's file name)
    caption: str = ""


@dataclass
class Row:
    """Tables and figures side by side (stacked where the page is narrow, and in Markdown)."""

    items: list[Table | Figure]


Block = Heading | Paragraph | Table | Figure | Row


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]


@dataclass
class Document:
    title: str
    meta: list[tuple[str, str]]
    sections: list[Section]

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for s in self.sections:
            for b in s.blocks:
                if isinstance(b, Figure):
                    out.append(b)
                elif isinstance(b, Row):
                    out.extend(i for i in b.items if isinstance(i, Figure))
        return out


# --------------------------------------------------------------------------- reading inputs


@dataclass
class Run:
    """One run directory as read from disk (any part may be missing)."""

    path: Path
    label: str
    metrics: dict[str, Any] | None
    history: dict[str, list[Any]] | None
    recipe: dict[str, Any] | None

    @property
    def accuracy(self) -> float | None:
        """Test accuracy in percent."""
        if self.metrics and self.metrics.get("test_accuracy") is not None:
            return float(self.metrics["test_accuracy"]) * 100
        return None

    @property
    def model_key(self) -> tuple[str, str] | None:
        model = (self.recipe or {}).get("model") or {}
        name = model.get("name") or (self.metrics or {}).get("model")
        if not name:
            return None
        return name, json.dumps(model.get("options") or {}, sort_keys=True)


@dataclass
class Study:
    """One study directory: its definition, summary rows and runs per step."""

    path: Path
    spec: dict[str, Any]
    rows: list[dict[str, Any]]
    runs: dict[str, list[Run]]

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "ablation"))

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.path.name)

    def step_names(self) -> list[str]:
        names = [s.get("name") for s in self.spec.get("steps", []) if s.get("name")]
        for r in self.rows:
            if r.get("step") not in names:
                names.append(r.get("step"))
        for n in self.runs:
            if n not in names:
                names.append(n)
        return names

    def reference(self) -> dict[str, float]:
        """The seed report's own accuracy per step: from the steps, else the built-in table."""
        ref = {
            s["name"]: float(s["reference"])
            for s in self.spec.get("steps", [])
            if s.get("name") and isinstance(s.get("reference"), (int, float))
        }
        if not ref and self.spec.get("ladder") == SEED_REPORT_LADDER:
            ref = dict(SEED_REPORT_ACCURACY)
        return ref


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read ({exc}); fix or remove the file") from None


def _read_recipe(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "recipe.toml"
    if not path.is_file():
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read the recipe ({exc})") from None


def is_run_dir(path: Path) -> bool:
    return any((path / n).is_file() for n in ("metrics.json", "history.json", "checkpoint.pt"))


def is_study_dir(path: Path) -> bool:
    return (path / "study.json").is_file() or (path / "summary.json").is_file()


def read_run(path: Path, label: str | None = None) -> Run:
    """A run directory's metrics, history and resolved recipe (those that exist)."""
    path = Path(path)
    metrics = _read_json(path / "metrics.json")
    history = _read_json(path / "history.json")
    recipe = _read_recipe(path)
    if history is None or recipe is None:
        ckpt = path / "checkpoint.pt"
        if ckpt.is_file():  # an unfinished run: its checkpoint holds both
            from cifarlab.rundir import load_checkpoint

            payload = load_checkpoint(ckpt)
            history = history if history is not None else payload.get("history")
            recipe = recipe if recipe is not None else payload.get("recipe")
    return Run(path=path, label=label or path.name, metrics=metrics, history=history, recipe=recipe)


def read_study(path: Path) -> Study:
    """A study directory: study.json, summary.json rows, and every run under runs/<step>/."""
    path = Path(path)
    spec = _read_json(path / "study.json") or {}
    summary = _read_json(path / "summary.json") or {}
    rows = list(summary.get("rows", [])) if isinstance(summary, dict) else []
    runs: dict[str, list[Run]] = {}
    root = path / "runs"
    if root.is_dir():
        steps = [s.get("name") for s in spec.get("steps", []) if s.get("name")]
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        for step in steps + [s for s in found if s not in steps]:
            step_dir = root / step
            if not step_dir.is_dir():
                continue
            seeds = sorted(
                (p for p in step_dir.iterdir() if p.is_dir() and is_run_dir(p)),
                key=lambda p: _seed_number(p.name),
            )
            if seeds:
                label = str(spec.get("name") or path.name)
                runs[step] = [read_run(p, label=f"{label}: {step}/{p.name}") for p in seeds]
    return Study(path=path, spec=spec, rows=rows, runs=runs)


def _seed_number(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 1 << 30, name)


def read_inputs(paths: list[str | Path]) -> tuple[list[Run], list[Study]]:
    """Sort the given directories into runs and studies; anything else is an error."""
    runs: list[Run] = []
    studies: list[Study] = []
    if not paths:
        raise ReportError("give at least one run or study directory")
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ReportError(f"{path}: no such directory (expected a run or study directory)")
        if is_study_dir(path):
            studies.append(read_study(path))
        elif is_run_dir(path):
            runs.append(read_run(path))
        else:
            raise ReportError(
                f"{path}: not a run directory (no metrics.json, history.json or checkpoint.pt) "
                "nor a study directory (no study.json or summary.json)"
            )
    return runs, studies


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


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(p for p in out.split("-") if p) or "x"


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


def _median_run(runs: list[Run]) -> Run:
    scored = [r for r in runs if r.accuracy is not None]
    if not scored:
        return runs[0]
    scored.sort(key=lambda r: r.accuracy)
    return scored[(len(scored) - 1) // 2]


def featured_runs(runs: list[Run], studies: list[Study]) -> list[Run]:
    """Runs shown in detail: each given run, and the median-seed run of each study's last step."""
    out = list(runs)
    for study in studies:
        steps = [s for s in study.step_names() if s in study.runs]
        if steps:
            out.append(_median_run(study.runs[steps[-1]]))
    return out


def data_section(featured: list[Run], data_dir: str | None, names: _Names) -> Section | None:
    metrics = [r.metrics for r in featured if r.metrics and r.metrics.get("data")]
    if not metrics:
        return None
    info = metrics[0]["data"]
    blocks: list[Block] = [Paragraph(f"Source: {info.get('source', 'unknown')}.")]
    others = sorted({m["data"].get("source") for m in metrics[1:]} - {info.get("source")})
    if others:
        blocks.append(Paragraph("Other runs in this report used: " + "; ".join(map(str, others))))
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
    data, why = _load_data(info, featured, data_dir)
    if data is None:
        blocks.append(split_table)
        blocks.append(Paragraph(f"Example images and class histograms left out: {why}.", note=True))
        return Section("data", "Data", blocks)
    from cifarlab.data.explore import describe, write_figures

    desc = describe(data)
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
        paths = {p.stem: p.read_bytes() for p in write_figures(data, tmp)}
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


def _load_data(info: dict[str, Any], featured: list[Run], data_dir: str | None):
    """The dataset the runs used, found without any download; (data, None) or (None, why)."""
    from cifarlab.data import load_cifar10

    source = str(info.get("source", ""))
    try:
        if data_dir is not None:
            data = load_cifar10(data_dir, download=False)
        elif source.startswith("bundled sample"):
            data = load_cifar10("sample")
        else:
            recipe_source = next(
                (((r.recipe or {}).get("data") or {}).get("source") for r in featured if r.recipe),
                None,
            )
            where = recipe_source if recipe_source not in (None, "auto", "sample") else None
            data = load_cifar10(where, download=False)
    except CifarlabError as exc:
        return None, f"the dataset was not found ({str(exc)[:160]}); pass --data-dir"
    n_train = (info.get("n_train") or 0) + (info.get("n_val") or 0)
    if n_train and (len(data.train_labels), len(data.test_labels)) != (n_train, info.get("n_test")):
        return None, (
            f"the data found ({data.source}) is not what the runs used "
            f"({n_train:,} train + validation, {info.get('n_test'):,} test); pass --data-dir"
        )
    return data, None


def layer_table(model_name: str, options: dict[str, Any], num_classes: int = 10) -> Table:
    """Each leaf layer in call order on a 1×3×32×32 input: type, settings, output shape, parameters."""
    import torch

    from cifarlab.models import count_parameters, create_model

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


def model_section(featured: list[Run], studies: list[Study]) -> Section | None:
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
    from cifarlab.models import count_flops, create_model

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


def _run_summary(run: Run) -> list[tuple[str, str]]:
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


def _run_figures(run: Run, names: _Names) -> list[Figure]:
    """loss, accuracy and confusion PNGs: the run's own files, else drawn from its data."""
    stems = {"loss.png": "loss", "accuracy.png": "accuracy", "confusion.png": "confusion"}
    captions = {
        "loss.png": "Train (running) and validation loss",
        "accuracy.png": "Train (running) and validation accuracy",
        "confusion.png": "Confusion matrix on the test set (rows: true class)",
    }
    got: dict[str, bytes] = {}
    for fname in RUN_FIGURES:
        p = run.path / fname
        if p.is_file() and p.stat().st_size > 0:
            got[fname] = p.read_bytes()
    missing = [f for f in RUN_FIGURES if f not in got]
    if missing:
        from cifarlab.figures import plot_confusion, plot_curves

        with tempfile.TemporaryDirectory(prefix="cifarlab-report-") as tmp:
            if (
                run.history
                and run.history.get("step")
                and ("loss.png" in missing or "accuracy.png" in missing)
            ):
                for p in plot_curves(run.history, tmp, title=run.label):
                    got.setdefault(p.name, p.read_bytes())
            m = run.metrics or {}
            if "confusion.png" in missing and m.get("confusion") and m.get("classes"):
                p = plot_confusion(m["confusion"], m["classes"], Path(tmp) / "confusion.png")
                got["confusion.png"] = p.read_bytes()
    return [
        Figure(got[f], names(f"{run.label}-{stems[f]}"), captions[f])
        for f in RUN_FIGURES
        if f in got
    ]


def training_section(featured: list[Run], names: _Names) -> Section | None:
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
        curves = [f for f in figs if not f.name.endswith("confusion")]
        if curves:
            blocks.append(Row(curves))
        m = run.metrics or {}
        per_class = m.get("per_class_accuracy")
        confusion = next((f for f in figs if f.name.endswith("confusion")), None)
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


def improvements_section(studies: list[Study], names: _Names) -> Section | None:
    from cifarlab.report.charts import ablation_chart

    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "ablation"):
        rows = _study_rows(study)
        if not rows:
            continue
        ref = study.reference()
        changes = {s.get("name"): s.get("changes") or {} for s in study.spec.get("steps", [])}
        show_ref = bool(ref) and any(r["step"] in ref for r in rows)
        columns = ["step", "change", "n", "mean ± std", "95% CI", "Δ previous (95% CI)"]
        if show_ref:
            columns.append("seed report")
        table_rows = []
        for r in rows:
            diff = r.get("diff_prev")
            dci = r.get("diff_prev_ci95")
            cells = [
                r["step"],
                _changes(changes.get(r["step"])),
                _n_of(r, study),
                f"{r['mean']:.2f} ± {r['std']:.2f}"
                if r.get("std") is not None
                else f"{r['mean']:.2f}",
                _ci(r.get("ci95")),
                "—"
                if diff is None
                else f"{diff:+.2f}" + (f" ({_ci(dci, signed=True)})" if dci else ""),
            ]
            if show_ref:
                cells.append(_pct(ref.get(r["step"])) if r["step"] in ref else "—")
            table_rows.append(cells)
        blocks.append(Heading(f"{study.name}", level=3))
        desc = (
            f"Each step adds one change to the one before it, trained with seeds "
            f"{', '.join(map(str, study.spec.get('seeds', []))) or '—'}; test accuracy in percent."
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


def _n_planned(row: dict[str, Any], study: Study) -> tuple[int, int]:
    """(finished runs behind a row, seeds the study plans for it)."""
    return int(row.get("n", len(row.get("values") or []))), len(study.spec.get("seeds") or [])


def _n_of(row: dict[str, Any], study: Study) -> str:
    """The runs behind a row: "3", or "2 of 3" while some of the study's seeds are unfinished."""
    n, planned = _n_planned(row, study)
    return f"{n} of {planned}" if planned > n else str(n)


def _study_rows(study: Study) -> list[dict[str, Any]]:
    """summary.json's rows; where it is missing, the same numbers computed from the runs."""
    if study.rows:
        return [r for r in study.rows if r.get("mean") is not None]
    rows = []
    prev = None
    for step in study.step_names():
        vals = [r.accuracy for r in study.runs.get(step, []) if r.accuracy is not None]
        if not vals:
            continue
        mean = statistics.fmean(vals)
        std = statistics.stdev(vals) if len(vals) > 1 else None
        rows.append(
            {
                "step": step,
                "n": len(vals),
                "mean": mean,
                "std": std,
                "ci95": None,
                "min": min(vals),
                "max": max(vals),
                "values": vals,
                "diff_prev": None if prev is None else mean - prev,
                "diff_prev_ci95": None,
            }
        )
        prev = mean
    return rows


def robustness_section(studies: list[Study], names: _Names) -> Section | None:
    from cifarlab.report.charts import seed_chart

    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "seeds"):
        summary = {r.get("step"): r for r in _study_rows(study)}
        for step in study.step_names():
            runs = study.runs.get(step, [])
            row = summary.get(step)
            if not runs and not row:
                continue
            title = study.name if len(study.runs) <= 1 else f"{study.name}: {step}"
            blocks.append(Heading(title, level=3))
            if row:
                n, planned = _n_planned(row, study)
                seeds = (
                    f"{n} of {planned} planned seeds (the study is not finished: rerun its "
                    f"command to train the rest)"
                    if planned > n
                    else f"{n} seeds"
                )
                blocks.append(
                    Paragraph(
                        f"{seeds}: test accuracy "
                        f"{row['mean']:.2f}% ± {row['std']:.2f} (std)"
                        + (f", 95% CI {_ci(row.get('ci95'))}" if row.get("ci95") else "")
                        + (
                            f", range {row['min']:.2f} to {row['max']:.2f}"
                            if row.get("min") is not None and row.get("max") is not None
                            else ""
                        )
                        + "."
                        if row.get("std") is not None
                        else f"Test accuracy {row['mean']:.2f}%."
                    )
                )
            if runs:
                rows = []
                for r in runs:
                    m = r.metrics or {}
                    rows.append(
                        [
                            str(m.get("seed", r.path.name)),
                            _pct(r.accuracy),
                            _pct(m["val_accuracy"] * 100)
                            if m.get("val_accuracy") is not None
                            else "—",
                            _secs(m.get("train_time_s")),
                            str(r.path.relative_to(study.path)),
                        ]
                    )
                blocks.append(
                    Table(
                        [
                            "seed",
                            "test accuracy",
                            "final validation accuracy",
                            "training time",
                            "run",
                        ],
                        rows,
                        caption="One run per seed, identical recipe otherwise",
                        numeric=[True, True, True, True, False],
                    )
                )
                histories = {
                    f"seed {(r.metrics or {}).get('seed', r.path.name)}": r.history
                    for r in runs
                    if r.history
                }
                accs = {
                    f"seed {(r.metrics or {}).get('seed', r.path.name)}": r.accuracy
                    for r in runs
                    if r.accuracy is not None
                }
                if histories or accs:
                    blocks.append(
                        Figure(
                            seed_chart(histories, accs),
                            names(f"{study.name}-{step}-seeds"),
                            "Validation accuracy of every seed (left); test accuracy per seed "
                            "with mean and ±1 std band (right)",
                        )
                    )
    return Section("robustness", "Robustness", blocks) if blocks else None


def comparison_points(runs: list[Run], studies: list[Study]) -> list[dict[str, Any]]:
    """One point per given run and per study step (mean over its seeds)."""
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
                "parameters": m.get("parameters"),
                "images_per_s": m.get("images_per_s"),
                "device": (m.get("provenance") or {}).get("device"),
            }
        )
    for study in studies:
        for step in study.step_names():
            done = [r for r in study.runs.get(step, []) if r.accuracy is not None]
            if not done:
                continue
            accs = [r.accuracy for r in done]
            times = [r.metrics.get("train_time_s") for r in done if r.metrics.get("train_time_s")]
            speeds = [r.metrics.get("images_per_s") for r in done if r.metrics.get("images_per_s")]
            points.append(
                {
                    "label": f"{study.name}/{step}" if len(studies) > 1 or runs else step,
                    "model": done[0].metrics.get("model"),
                    "accuracy": statistics.fmean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else None,
                    "n": len(accs),
                    "train_time_s": statistics.fmean(times) if times else None,
                    "parameters": done[0].metrics.get("parameters"),
                    "images_per_s": statistics.fmean(speeds) if speeds else None,
                    "device": (done[0].metrics.get("provenance") or {}).get("device"),
                }
            )
    return points


def comparison_section(runs: list[Run], studies: list[Study], names: _Names) -> Section | None:
    from cifarlab.report.charts import comparison_chart

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
                "images/s",
                "device",
            ],
            rows,
            caption="Models compared (studies: mean over seeds ± std)",
            numeric=[False, False, True, True, True, True, True, False],
        ),
        Figure(
            comparison_chart(points),
            names("comparison"),
            "Test accuracy against training time (left) and parameters (right)",
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
        improvements_section(studies, names),
        robustness_section(studies, names),
        comparison_section(runs, studies, names),
    ]
    from cifarlab import __version__

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
    if fmt == "html":
        from cifarlab.report.html import write_html

        return write_html(doc, out)
    from cifarlab.report.markdown import write_markdown

    return write_markdown(doc, out)
