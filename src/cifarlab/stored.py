"""Numbers read back from files cifarlab wrote: checked like any other input.

A temperature, a metric or a trial value read from JSON may have been edited, truncated or
written by another version: the readers (calibration.json's temperature, a run's metrics, an
evaluation, a corruption table, a tune summary, a study summary) check every number they use
here, so a bad one is one line naming the file and the field, exit 2
(:class:`StoredValueError`), never a NaN in a result, a traceback in a chart, or a silently
different prediction. ``json_text`` is the one way cifarlab turns results into JSON: it
refuses NaN and infinity, which the JSON standard has no spelling for.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from cifarlab.errors import CifarlabError


class StoredValueError(CifarlabError):
    """A number read back from a file has the wrong type, is not finite, or is out of range."""


def number(
    value: Any,
    path: str | os.PathLike[str],
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    optional: bool = False,
) -> float | int | None:
    """``value`` as a finite number in [low, high] (an int with ``integer``); None passes when
    ``optional``. Else StoredValueError naming ``path`` and ``field``."""
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    if low is not None or high is not None:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        want = f"{kind} in [{lo}, {hi}]"
    else:
        want = "a finite number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        _fail(path, field, value, kind if want == "a finite number" else want)
    if not math.isfinite(value):
        _fail(path, field, value, want)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(path, field, value, want)
    return value


def field(
    record: dict[str, Any], key: str, path: str | os.PathLike[str], prefix: str = "", **kwargs: Any
) -> Any:
    """``record[key]`` checked by :func:`number`; None when absent or null. ``prefix`` names
    the enclosing field in the message (``calibrated.ece``)."""
    return number(record.get(key), path, prefix + key, optional=True, **kwargs)


def probability(value: Any, path: str | os.PathLike[str], field: str, **kwargs: Any) -> Any:
    """A fraction in [0, 1] (an accuracy, an ECE): :func:`number` with those bounds."""
    return number(value, path, field, low=0.0, high=1.0, **kwargs)


def mapping(value: Any, path: str | os.PathLike[str], field: str = "") -> dict[str, Any]:
    """``value`` is a JSON object, else StoredValueError."""
    if not isinstance(value, dict):
        where = f"{field} " if field else ""
        raise StoredValueError(
            f"{_show(path)}: {where}is a {_type(value)}, not a JSON object; fix or remove the file"
        )
    return value


def json_text(obj: Any, *, indent: int | None = 2) -> str:
    """``obj`` as strict JSON: NaN or infinity anywhere (a diverged model's loss) is
    StoredValueError, one line, never the invalid token ``NaN`` that JSON readers refuse."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        raise StoredValueError(
            "the result holds a non-finite number (NaN or infinity), which JSON cannot hold; "
            "the model or its inputs diverged"
        ) from None


def _fail(path: str | os.PathLike[str], field: str, value: Any, want: str) -> None:
    shown = repr(value) if not isinstance(value, str) else json.dumps(value)[:40]
    raise StoredValueError(
        f"{_show(path)}: {field} is {shown}, not {want}; fix the file, or remove it and rerun "
        f"the command that wrote it"
    )


def _type(value: Any) -> str:
    return {list: "list", str: "string", type(None): "null"}.get(type(value), type(value).__name__)


def _show(path: str | os.PathLike[str]) -> str:
    return "".join(c if c.isprintable() else "?" for c in os.fspath(path))
