"""The report: one document (HTML or Markdown) made from run and study directories.

- :mod:`cifarlab.report.document`: the document model (sections of headings, paragraphs,
  tables and PNG figures), plain data with no I/O;
- :mod:`cifarlab.report.inputs`: the run and study directories it is made from, read through
  their owners (:class:`cifarlab.rundir.RunDir`, :func:`cifarlab.studies.spec.read_study`,
  :func:`cifarlab.studies.summary.summarize`);
- :mod:`cifarlab.report.charts`: the report's own figures, drawn to PNG bytes;
- :mod:`cifarlab.report.calibration_section`: the calibration section (ECE, NLL, Brier,
  temperature, reliability diagrams), registered in sections;
- :mod:`cifarlab.report.corruptions_section`: the corruption-robustness section (the runs'
  corruptions.json, side by side);
- :mod:`cifarlab.report.tune_section`: the hyperparameter-search section of a tune directory
  (read through :func:`cifarlab.tune.results.read_tune_dir`);
- :mod:`cifarlab.report.sections`: the sections built from the inputs, and
  :func:`~cifarlab.report.sections.write_report`, the entry point;
- :mod:`cifarlab.report.html`, :mod:`cifarlab.report.markdown`: the writers, which know the
  document model only.

Imports point one way: document <- inputs, charts, calibration_section, corruptions_section,
tune_section <- sections -> html, markdown -> document.
"""

from __future__ import annotations

from cifarlab.errors import CifarlabError


class ReportError(CifarlabError):
    """A report input is not a run or study directory, or the output cannot be written."""


WRITE_HINT = "free disk space or choose another --out"
