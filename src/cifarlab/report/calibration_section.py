"""The report's calibration section: ECE, NLL, Brier, temperature and reliability diagrams.

For every run shown in detail that has calibration numbers, and per step of every study
whose runs have them. A run's numbers come from ``cifarlab evaluate``'s
``RUN/evaluation/none/evaluation.json`` when it holds them (with the temperature and the
numbers after scaling when it was run with ``--calibrate``), else from its metrics.json
(``test_ece``, ... written at the end of training); the definitions are
:mod:`cifarlab.calibration`'s. Values read from a run directory are checked before use: a
malformed number shows as "—", malformed bins leave the diagram out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

from cifarlab.calibration import N_BINS
from cifarlab.evaluate import check_evaluation
from cifarlab.figures import draw_reliability
from cifarlab.plotting import render
from cifarlab.report import ReportError
from cifarlab.report.document import Block, Figure, Heading, Paragraph, Row, Section, Table
from cifarlab.report.inputs import RunInput, StudyInput, read_png
from cifarlab.rundir import RunDir
from cifarlab.studies.stats import mean, sample_std
from cifarlab.studies.summary import difference_cell

DEFINITIONS = (
    f"ECE: top-label expected calibration error, sum over {N_BINS} equal-width confidence bins "
    "of (share of images in the bin) × |accuracy − mean confidence| (Guo et al., 2017); 0 is "
    "perfect. NLL: mean cross-entropy of the true class, in nats. Brier: mean over images of "
    "the sum over classes of (probability − one-hot)², from 0 to 2. Temperature: the T that "
    "minimises NLL of logits / T on the run's validation split (cifarlab evaluate "
    "--calibrate); it never changes the predicted class. All numbers on the test set."
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        return None
    return float(value)


def _bins(raw: Any) -> dict[str, Any] | None:
    """A reliability record (cifarlab.calibration) that can be drawn, else None."""
    if not isinstance(raw, dict):
        return None
    n = raw.get("n_bins")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        return None
    count = raw.get("count")
    if not isinstance(count, list) or len(count) != n:
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in count):
        return None
    out: dict[str, Any] = {"n_bins": n, "count": count}
    for key in ("accuracy", "confidence"):
        values = raw.get(key)
        if not isinstance(values, list) or len(values) != n:
            return None
        checked = [_number(v) for v in values]
        if any(c and v is None for c, v in zip(count, checked, strict=True)):
            return None
        out[key] = checked
    return out


def run_calibration(run: RunInput) -> dict[str, Any] | None:
    """The run's calibration numbers: {"source", "ece", "nll", "brier", "val_ece",
    "temperature", "ece_after", "nll_after", "brier_after", "bins", "bins_after", "figure"};
    None when it has none."""
    folder = RunDir(run.path, error=ReportError).evaluation("none")
    evaluation = folder.evaluation()
    if evaluation is not None:  # every number checked: one line naming a bad one, exit 2
        evaluation = check_evaluation(evaluation, folder.evaluation_path)
    m = run.metrics or {}
    out: dict[str, Any] = {"val_ece": _number(m.get("val_ece"))}
    if isinstance(evaluation, dict) and _number(evaluation.get("ece")) is not None:
        after = (
            evaluation.get("calibrated") if isinstance(evaluation.get("calibrated"), dict) else {}
        )
        temperature = evaluation.get("temperature")
        step = evaluation.get("step")
        out.update(
            source=f"cifarlab evaluate (step {step})"
            if isinstance(step, int)
            else "cifarlab evaluate",
            ece=_number(evaluation.get("ece")),
            nll=_number(evaluation.get("nll")),
            brier=_number(evaluation.get("brier")),
            bins=_bins(evaluation.get("reliability")),
            temperature=_number(temperature.get("value"))
            if isinstance(temperature, dict)
            else None,
            ece_after=_number(after.get("ece")),
            nll_after=_number(after.get("nll")),
            brier_after=_number(after.get("brier")),
            bins_after=_bins(after.get("reliability")),
            figure=read_png(folder.reliability_figure_path),
        )
        return out
    if _number(m.get("test_ece")) is None:
        return None
    out.update(
        source="end of training (metrics.json)",
        ece=_number(m.get("test_ece")),
        nll=_number(m.get("test_nll")),
        brier=_number(m.get("test_brier")),
        bins=_bins(m.get("test_reliability")),
        temperature=None,
        ece_after=None,
        nll_after=None,
        brier_after=None,
        bins_after=None,
        figure=None,
    )
    return out


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _fixed(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _diagram(run: RunInput, cal: dict[str, Any], name: str) -> Figure | None:
    """The run's own reliability.png (from cifarlab evaluate), else one drawn from its bins."""
    # No run label in the caption (an image's alt text): a run directory's name is not ours.
    caption = (
        f"Reliability on the test set ({cal['source']}); bars: accuracy per confidence bin, "
        f"shaded: gap to the bin's mean confidence"
        + ("; line: after temperature scaling" if cal["bins_after"] else "")
    )
    if cal["figure"]:
        return Figure(cal["figure"], name, caption)
    if cal["bins"] is None:
        return None
    fig = draw_reliability(
        cal["bins"], ece=cal["ece"], calibrated=cal["bins_after"], calibrated_ece=cal["ece_after"]
    )
    return Figure(render(fig), name, caption)


def _study_rows(study: StudyInput) -> list[list[str]]:
    """Per step: the seeds with calibration numbers, mean ± std ECE, the ECE difference from
    the previous step with Welch's interval, mean NLL and Brier, and mean ECE after
    temperature scaling where the seeds were calibrated."""
    rows = []
    previous: list[float] = []
    for step, runs in study.runs.items():
        found = [c for c in (run_calibration(r) for r in runs) if c is not None]
        eces = [c["ece"] for c in found if c["ece"] is not None]
        if not eces:
            continue
        nlls = [c["nll"] for c in found if c["nll"] is not None]
        briers = [c["brier"] for c in found if c["brier"] is not None]
        after = [c["ece_after"] for c in found if c["ece_after"] is not None]
        spread = f" ± {sample_std(eces) * 100:.2f}" if len(eces) > 1 else ""
        rows.append(
            [
                step,
                str(len(eces)),
                f"{mean(eces) * 100:.2f}%{spread}",
                difference_cell(previous, eces),
                _fixed(mean(nlls)) if nlls else "—",
                _fixed(mean(briers)) if briers else "—",
                f"{mean(after) * 100:.2f}% (n={len(after)})" if after else "—",
            ]
        )
        previous = eces
    return rows


def calibration_section(
    featured: list[RunInput], studies: list[StudyInput], names: Callable[[str], str]
) -> Section | None:
    """ECE, NLL, Brier (and temperature, after-scaling ECE and NLL when fitted) of every
    featured run that has them, their reliability diagrams, and per-step means of studies."""
    found = [(r, c) for r in featured if (c := run_calibration(r)) is not None]
    study_tables = [(s, rows) for s in studies if (rows := _study_rows(s))]
    if not found and not study_tables:
        return None
    blocks: list[Block] = [Paragraph(DEFINITIONS)]
    if found:
        rows = [
            [
                r.label,
                c["source"],
                _pct(c["ece"]),
                _fixed(c["nll"]),
                _fixed(c["brier"]),
                _pct(c["val_ece"]),
                _fixed(c["temperature"], 3),
                _pct(c["ece_after"]),
                _fixed(c["nll_after"]),
            ]
            for r, c in found
        ]
        blocks.append(
            Table(
                [
                    "run",
                    "from",
                    "ECE",
                    "NLL",
                    "Brier",
                    "validation ECE",
                    "temperature",
                    "ECE after T",
                    "NLL after T",
                ],
                rows,
                caption="Calibration on the test set (— : not measured)",
                numeric=[False, False, True, True, True, True, True, True, True],
            )
        )
        for r, c in found:
            figure = _diagram(r, c, names(f"{r.label}-reliability"))
            if figure is None:
                continue
            key = Table(
                ["", ""],
                [
                    ["run", r.label],
                    ["from", c["source"]],
                    ["ECE", _pct(c["ece"])],
                    ["ECE after T", _pct(c["ece_after"])],
                ],
                caption="Reliability diagram",
            )
            blocks.append(Row([key, figure]))
    for study, rows in study_tables:
        blocks.append(Heading(f"{study.name}: calibration per step", level=3))
        blocks.append(
            Table(
                [
                    "step",
                    "n",
                    "ECE (mean ± std)",
                    "Δ ECE vs previous step, 95% Welch; beyond noise?",
                    "NLL (mean)",
                    "Brier (mean)",
                    "ECE after T (mean)",
                ],
                rows,
                caption="Test-set calibration over the step's seeds (ECE and Δ in points)",
                numeric=[False, True, True, False, True, True, True],
            )
        )
    return Section("calibration", "Calibration", blocks)
