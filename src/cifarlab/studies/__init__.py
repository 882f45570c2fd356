"""Studies: ablation ladders and seed studies, reported as distributions.

- :mod:`cifarlab.studies.ladder`: ladders as data (an ordered list of named recipe changes,
  TOML), turned into the steps of a cumulative or leave-one-out study;
- :mod:`cifarlab.studies.spec`: a study's definition (``study.json``) and the runs it plans;
- :mod:`cifarlab.studies.studydir`: the owner of study directories (every path inside one);
- :mod:`cifarlab.studies.runner`: its runs (one ``cifarlab train`` run directory per step and
  seed) through the job runner (:mod:`cifarlab.jobs`): parallel and resumable execution,
  shards and merging;
- :mod:`cifarlab.studies.summary`: the summary table (JSON, CSV, Markdown);
- :mod:`cifarlab.studies.stats`: mean, std, Student-t and Welch intervals (no scipy);
- :mod:`cifarlab.studies.figures`: accuracy per step, curves grid, strip plot.

Nothing here is imported eagerly, so ``import cifarlab.studies`` stays cheap.
"""

from __future__ import annotations

from cifarlab.errors import CifarlabError


class StudyError(CifarlabError):
    """A study directory, ladder or study option is wrong (one line, naming the file or flag)."""
