"""Corruption robustness of a checkpoint: its accuracy on CIFAR-10-C made from its test set.

:func:`evaluate_corruptions` measures test accuracy on each chosen corruption of CIFAR-10-C
(Hendrycks & Dietterich, ICLR 2019) at each chosen severity, generated from the run's own
test set by :mod:`cifarlab.data.cifar10c` (seeded, cached, never downloaded), and
summarises it (:func:`summarize`): the mean per corruption and per severity, the *mean
corruption accuracy* (the mean over every chosen cell; over all 15 corruptions and 5
severities it is the number CIFAR-10-C papers report), and that mean relative to clean
accuracy (mean corruption accuracy / clean accuracy). ImageNet-C's mCE, normalised by
AlexNet's errors, has no CIFAR-10 counterpart and is not computed.

A run on CIFAR-100 (fine or coarse labels) is measured the same way on CIFAR-100-C, made
by the same corruptions from its own test set and cached apart from CIFAR-10-C's
(:func:`cifarlab.data.cifar10c.test_set_id` includes the dataset); the result records
``dataset``. Images other than 32x32 (a folder dataset's data.image_size) are refused.

``cifarlab evaluate RUN --corruptions all`` writes the result as corruptions.json and a
chart, corruptions.png, into RUN/evaluation/<tta>/; the report reads them from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarlab.atomic import write_json
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.data.cifar10c import DEFAULT_SEED, NAMES, VERSION, corrupted_test_images, test_set_id
from cifarlab.data.corruptions import CATEGORIES, SEVERITIES
from cifarlab.data.corruptions import SIZE as CORRUPTION_SIDE
from cifarlab.errors import CifarlabError
from cifarlab.figures import plot_corruptions
from cifarlab.paths import output_dir
from cifarlab.rundir import EvaluationDir
from cifarlab.stored import field, mapping, number
from cifarlab.trained import evaluation_data, load_trained_model

FORMAT_VERSION = 1  # of corruptions.json (under its key "format")

__all__ = [
    "CATEGORIES",
    "DEFAULT_SEED",
    "NAMES",
    "RobustnessError",
    "evaluate_corruptions",
    "parse_corruptions",
    "parse_severities",
    "summarize",
]


class RobustnessError(CifarlabError):
    """A bad --corruptions or --severities value, or nothing to evaluate."""


# --------------------------------------------------------------------------- the selection


def parse_corruptions(text: str, flag: str = "--corruptions") -> list[str]:
    """``all`` or comma-separated names -> the names in the order given (duplicates dropped)."""
    choices = "all, or a comma-separated list of: " + ", ".join(NAMES)
    if text.strip().lower() == "all":
        return list(NAMES)
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            raise RobustnessError(f"{flag} {text!r}: an empty name; choose {choices}")
        if name not in NAMES:
            raise RobustnessError(f"{flag}: unknown corruption {name!r}; choose {choices}")
        if name not in names:
            names.append(name)
    return names


def parse_severities(text: str, flag: str = "--severities") -> list[int]:
    """``1-5``, a range ``2-4``, a list ``1,3`` or one number -> sorted severities in 1..5."""
    low, high = SEVERITIES[0], SEVERITIES[-1]
    bad = RobustnessError(
        f"{flag} {text!r}: choose severities {low} to {high} as a range (1-5, 2-4), "
        f"a comma-separated list (1,3) or one number"
    )
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        ends = part.split("-")
        if len(ends) > 2 or not all(e.strip().isdigit() for e in ends):
            raise bad
        a, b = int(ends[0]), int(ends[-1])
        if not low <= a <= b <= high:
            raise bad
        chosen.update(range(a, b + 1))
    return sorted(chosen)


# --------------------------------------------------------------------------- the numbers


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def summarize(accuracy: dict[str, dict[int, float]], clean_accuracy: float) -> dict[str, Any]:
    """Means of a table ``accuracy[corruption][severity]`` (fractions): per corruption, per
    severity, over every cell (``mean_accuracy``) and that relative to ``clean_accuracy``."""
    names = list(accuracy)
    severities = sorted({s for row in accuracy.values() for s in row})
    cells = [acc for row in accuracy.values() for acc in row.values()]
    mean = _mean(cells)
    return {
        "mean_by_corruption": {n: _mean(accuracy[n].values()) for n in names},
        "mean_by_severity": {
            str(s): _mean(accuracy[n][s] for n in names if s in accuracy[n]) for s in severities
        },
        "mean_by_category": {
            cat: _mean(_mean(accuracy[n].values()) for n in members if n in accuracy)
            for cat, members in CATEGORIES.items()
            if any(n in accuracy for n in members)
        },
        "mean_accuracy": mean,
        "relative_accuracy": mean / clean_accuracy if clean_accuracy > 0 else None,
    }


def evaluate_corruptions(
    checkpoint: str | Path,
    *,
    corruptions: Iterable[str] = NAMES,
    severities: Iterable[int] = SEVERITIES,
    seed: int = DEFAULT_SEED,
    tta: str = "none",
    data=None,
    data_dir: str | None = None,
    device: str = "auto",
    out_dir: str | Path | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    on_row: Callable[[str, dict[int, float]], None] | None = None,
    progress: Callable[[str], None] | None = None,
    on_data: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy of a checkpoint on each corruption x severity of CIFAR-10-C made from its test
    set, and its clean accuracy (the same pass, same ``tta``), summarised (:func:`summarize`).

    Checkpoint, data and device as :func:`cifarlab.evaluate.evaluate` reads them
    (cifarlab.trained). ``on_row(name, {severity: acc})``
    sees each corruption as it is done, ``progress`` a line whenever a cell is generated
    rather than read from the cache (or a ``cifarlab: warning:`` line about the cache),
    ``on_data(source)`` the data's name once it is loaded, before any cell, ``log`` the result before anything is written. With
    ``out_dir``, corruptions.json and corruptions.png are written there.
    """
    names = list(corruptions)
    levels = sorted(set(severities))
    unknown = [n for n in names if n not in NAMES] + [s for s in levels if s not in SEVERITIES]
    if unknown or not names or not levels:
        raise RobustnessError(
            f"corruptions {names} x severities {levels}: choose at least one of each, among "
            f"{', '.join(NAMES)} and {SEVERITIES[0]}-{SEVERITIES[-1]}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RobustnessError(f"corruption seed {seed!r}: must be an integer, 0 or more")
    trained = load_trained_model(checkpoint, device=device, calibrated=False)
    data, _ = evaluation_data(trained, data=data, data_dir=data_dir)
    if on_data is not None:
        on_data(data.source)
    test_images, test_labels = data.test_images, data.test_labels
    if len(test_labels) == 0:
        raise RobustnessError(f"{data.source}: no test images to corrupt")
    side = test_images.shape[1]
    if side != CORRUPTION_SIDE:
        raise RobustnessError(
            f"{data.source}: the corruptions are defined for {CORRUPTION_SIDE}x{CORRUPTION_SIDE} "
            f"images (CIFAR-10-C's constants), and these are {side}x{side} (data.image_size)"
        )
    labels = torch.from_numpy(test_labels)

    def accuracy(images: np.ndarray) -> float:
        logits = trained.logits(
            to_uint8_tensor(images, trained.device),
            tta=tta,
            batch_size=trained.recipe.eval.batch_size,
        )
        return float((logits.argmax(dim=1).cpu() == labels).double().mean())

    clean = accuracy(test_images)
    test_id = test_set_id(test_images, test_labels, dataset=data.dataset)
    table: dict[str, dict[int, float]] = {}
    for name in names:
        table[name] = {
            s: accuracy(
                corrupted_test_images(test_images, name, s, seed, test_id=test_id, log=progress)
            )
            for s in levels
        }
        if on_row is not None:
            on_row(name, table[name])
    result: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "corruptions": names,
        "severities": levels,
        "seed": seed,
        "generator_version": VERSION,
        "test_set": test_id,
        "dataset": data.dataset,
        "tta": tta,
        "count": len(test_labels),
        "clean_accuracy": clean,
        "accuracy": {n: {str(s): a for s, a in row.items()} for n, row in table.items()},
        **summarize(table, clean),
        "checkpoint": str(checkpoint),
        "step": trained.step,
        "data": data.source,
    }
    if log is not None:
        log(result)
    if out_dir is not None:
        out = EvaluationDir(output_dir(out_dir, "evaluation folder", create=True))
        label = Path(checkpoint).name if Path(checkpoint).is_dir() else Path(checkpoint).parent.name
        plot_corruptions({label: result}, out.corruptions_figure_path, title=label)
        write_json(out.corruptions_path, result)
    return result


def check_corruptions(record: Any, path: Path) -> dict[str, Any]:
    """A corruptions.json's numbers, as the report reads them back: every accuracy in
    [0, 1], seed, count and step whole and >= 0; else StoredValueError naming the file and
    field (cifarlab.stored)."""
    record = mapping(record, path)
    field(record, "clean_accuracy", path, low=0.0, high=1.0)
    for key in ("seed", "count", "step"):
        field(record, key, path, low=0, integer=True)
    table = record.get("accuracy")
    if table is not None:
        for name, row in mapping(table, path, "accuracy").items():
            for severity, value in mapping(row, path, f"accuracy.{name}").items():
                number(value, path, f"accuracy.{name}.{severity}", low=0.0, high=1.0)
    return record


# --------------------------------------------------------------------------- as text


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.2f}%"


def table_header(severities: Iterable[int]) -> str:
    """The header line of the text table (corruption, one column per severity, mean)."""
    return (
        f"{'corruption':<18}"
        + "".join(f"{'sev ' + str(s):>9}" for s in severities)
        + f"{'mean':>9}"
    )


def table_row(name: str, row: dict[int, float]) -> str:
    """One corruption's line: its accuracy per severity and their mean."""
    cells = "".join(f"{_pct(row[s]):>9}" for s in sorted(row))
    return f"{name:<18}{cells}{_pct(_mean(row.values())):>9}"


def table_footer(result: dict[str, Any]) -> list[str]:
    """The per-severity means and the summary line of a result."""
    by_sev = result["mean_by_severity"]
    mean_row = f"{'mean':<18}" + "".join(f"{_pct(v):>9}" for v in by_sev.values())
    relative = result["relative_accuracy"]
    return [
        mean_row + f"{_pct(result['mean_accuracy']):>9}",
        f"clean accuracy {_pct(result['clean_accuracy'])}; mean corruption accuracy "
        f"{_pct(result['mean_accuracy'])} over {len(result['corruptions'])} corruption(s) x "
        f"{len(result['severities'])} severit{'y' if len(result['severities']) == 1 else 'ies'}"
        + (f" ({relative * 100:.1f}% of clean)" if relative is not None else ""),
    ]
