"""The report's entry point: the sections in order, built from run, study and tune
directories into one document, and written.

A report follows the seed report's structure, one module per section:
:mod:`~cifarlab.report.data_section`, :mod:`~cifarlab.report.model_section`,
:mod:`~cifarlab.report.training_section`, :mod:`~cifarlab.report.calibration_section`,
:mod:`~cifarlab.report.improvements_section` (an ablation ladder),
:mod:`~cifarlab.report.resnet_section` (the ResNet question, from a ladder of ResNet-family nets),
:mod:`~cifarlab.report.seeds_section` (seed variance of a seed study),
:mod:`~cifarlab.report.corruptions_section` (corruption robustness),
:mod:`~cifarlab.report.comparison_section` (a comparison of models) and
:mod:`~cifarlab.report.tune_section` (one per tune directory).
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
from pathlib import Path

from cifarlab import __version__
from cifarlab.report import ReportError
from cifarlab.report.calibration_section import calibration_section
from cifarlab.report.comparison_section import comparison_section
from cifarlab.report.corruptions_section import corruptions_section
from cifarlab.report.data_section import data_section
from cifarlab.report.document import Document
from cifarlab.report.formatting import Names
from cifarlab.report.html import write_html
from cifarlab.report.improvements_section import improvements_section
from cifarlab.report.inputs import RunInput, StudyInput, read_inputs
from cifarlab.report.markdown import write_markdown
from cifarlab.report.model_section import model_section
from cifarlab.report.resnet_section import resnet_section
from cifarlab.report.seeds_section import seeds_section
from cifarlab.report.training_section import training_section
from cifarlab.report.tune_section import tune_sections


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


def build_document(
    paths: list[str | Path], *, data_dir: str | None = None, title: str | None = None
) -> Document:
    """Read run/study directories and build the report's sections (missing ones left out)."""
    runs, studies = read_inputs(paths)
    featured = featured_runs(runs, studies)
    names = Names()
    sections = [
        data_section(featured, data_dir, names),
        model_section(featured, studies),
        training_section(featured, names),
        calibration_section(featured, studies, names),
        improvements_section(studies, names),
        resnet_section(studies),
        seeds_section(studies, names),
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
