"""One training job of a study or search: a run trained (or resumed, or finished) in its
run directory, its lines in the run's train.log, the data loaded once per process (a pool
worker trains many runs on the same data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.data.tensors import load_data_for
from cifarlab.recipe import load_recipe
from cifarlab.rundir import RunDir
from cifarlab.train.loop import train

# Data loaded once per process, by where it comes from: a pool worker trains many runs on it.
_DATA: dict[tuple[Any, str], Any] = {}


def train_job(
    recipe: str | dict[str, Any],
    run_dir: Path,
    overrides: dict[str, Any],
    data_dir: str | None,
    *,
    on_eval: Callable[[int, int, dict[str, list[Any]]], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or finish: ``resume="auto"``) one run of a study or search in
    ``run_dir``; its metrics. Its lines go to the run's train.log (the data's too, when this
    process loads it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(RunDir(run_dir).train_log_path, "a", encoding="utf-8") as logf:

        def log(line: str) -> None:
            logf.write(line + "\n")
            logf.flush()

        # The one resolution of the job's recipe (and its one validation): it names the data,
        # and train() trains this Recipe as it is (the overrides change nothing in it; on a
        # resume they are compared with the checkpoint's recipe, not validated again when equal).
        resolved = load_recipe(recipe, overrides)
        data_cfg = resolved.data
        spec = data_cfg.dataset_spec()
        # data_dir wins (load_data_for); one copy per dataset and location in this process
        where = (spec, data_dir if data_dir is not None else data_cfg.source)
        if where not in _DATA:
            _DATA[where] = load_data_for(data_cfg.source, data_dir, log, spec=spec)
        return train(
            resolved,
            out_dir=run_dir,
            data=_DATA[where],
            overrides=overrides,
            resume="auto",
            progress=False,
            log=log,
            on_eval=on_eval,
        )
