"""Hyperparameter search: ``cifarlab tune``, on Optuna (https://optuna.org).

- :mod:`cifarlab.tune.space`: search spaces as data (TOML beside the recipes: each entry a
  recipe field with a distribution), validated against the recipe they search;
- :mod:`cifarlab.tune.search`: the command: the search itself, started, resumed or joined,
  its workers run through the shared job runner (:mod:`cifarlab.jobs`); a study in a SQLite
  file (or any database Optuna takes, e.g. PostgreSQL shared by many machines) that a rerun
  resumes. Its pieces: :mod:`~cifarlab.tune.spec` (the search's definition),
  :mod:`~cifarlab.tune.study` (the Optuna adapter), :mod:`~cifarlab.tune.trial` (one trial:
  an ordinary run directory, validation accuracy reported to Optuna's pruner at every
  evaluation point), :mod:`~cifarlab.tune.worker` (worker locks: killed trials failed and
  retried), :mod:`~cifarlab.tune.summary` (summary.json, and the best trial's recipe as
  TOML);
- :mod:`cifarlab.tune.results`: the owner of tune directories (every path inside one) and
  their reader;
- :mod:`cifarlab.tune.storage`: the storage URL as users write it (``postgresql://``,
  ``mysql://``: an installed driver), resolved before anything is written;
- :mod:`cifarlab.tune.confirm`: the best recipe against the starting one on the test set,
  K seeds each (seed studies), judged by Welch's interval.

A tune directory::

    OUT/tune.json          what the search is (starting recipe, space, pruner, seeds, study)
    OUT/study.db           the Optuna study (SQLite), unless --storage names another database
    OUT/trials/0007/       trial 7: a `cifarlab train` run directory, plus trial.json
    OUT/summary.json       every trial, the counts, the best trial, parameter importances
    OUT/start.toml         the resolved starting recipe (the recipe with the command's --set)
    OUT/best.toml          the best trial's resolved recipe (`cifarlab train --recipe OUT/best.toml`)
    OUT/confirm/           --confirm K: seed studies of the starting and the tuned recipe
    OUT/confirm.json, confirm.md   their test accuracies and Welch's interval
    OUT/tune.log           one line per trial started, finished, pruned, failed or retried
    OUT/workers/           a lock per live worker process (how a dead one's trials are found)

Optuna is imported on first use (:func:`cifarlab.tune.study.load_optuna`), by the modules
that run a search; the space and the results read without it.
"""

from __future__ import annotations

from cifarlab.errors import CifarlabError


class TuneError(CifarlabError):
    """A search space, tune option or tune directory is wrong (one line, naming it)."""
