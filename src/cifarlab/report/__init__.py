"""The report: one document (HTML or Markdown) made from run and study directories.

- :mod:`cifarlab.report.document`: the document model (sections of headings, paragraphs,
  tables and PNG figures), plain data with no I/O;
- :mod:`cifarlab.report.inputs`: the run and study directories it is made from, read through
  their owners (:class:`cifarlab.rundir.RunDir`, :func:`cifarlab.studies.spec.read_study`,
  :func:`cifarlab.studies.summary.summarize`);
- :mod:`cifarlab.report.formatting`: numbers, percentages, durations and intervals as table
  cells, and the figures' unique names;
- :mod:`cifarlab.report.charts`: the report's own figures (ablation, seeds, comparison),
  rendered to PNG bytes by :mod:`cifarlab.plotting`;
- one module per section, in the report's order: ``data_section``, ``model_section``,
  ``training_section``, ``calibration_section`` (ECE, NLL, Brier, temperature, reliability
  diagrams), ``improvements_section`` (ablation ladders), ``seeds_section`` (seed variance),
  ``corruptions_section`` (corruption robustness), ``comparison_section`` and
  ``tune_section`` (one per tune directory, read through
  :func:`cifarlab.tune.results.read_tune_dir`);
- :mod:`cifarlab.report.sections`: the entry point, :func:`~cifarlab.report.sections.write_report`,
  which builds the sections in order into one document;
- :mod:`cifarlab.report.html`, :mod:`cifarlab.report.markdown`: the writers, which know the
  document model only.

Imports point one way (the ``report`` contracts in .importlinter): sections -> each section
and the writers, which do not import each other -> charts, inputs, formatting, document.
"""

from __future__ import annotations

from cifarlab.errors import CifarlabError


class ReportError(CifarlabError):
    """A report input is not a run or study directory, or the output cannot be written."""


WRITE_HINT = "free disk space or choose another --out"
