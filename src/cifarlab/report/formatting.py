"""The report's shared formatting: numbers, percentages, durations and intervals as table
cells, and the unique file stems (:class:`Names`) of one document's figures.

Every function turns a missing or non-finite value into "—", the report's mark for "not
measured".
"""

from __future__ import annotations

import math


def percent(value: float | None, digits: int = 2) -> str:
    """A value already in percent, e.g. ``77.27%``."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}%"


def number(value: float | int | None) -> str:
    """A count with thousands separators, or a float to one decimal."""
    if value is None:
        return "—"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def duration(seconds: float | None) -> str:
    """Seconds under two minutes, else h:mm:ss."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} (h:mm:ss)"


def slug(text: str, limit: int = 80) -> str:
    """ASCII letters and digits joined by '-', at most ``limit`` long: a file stem and an id
    safe on any file system whatever a run's label holds."""
    out = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text.lower())
    return "-".join(p for p in out.split("-") if p)[:limit].rstrip("-") or "x"


class Names:
    """Unique figure file stems within one document."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, stem: str) -> str:
        base = slug(stem)
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}-{n}", n + 1
        self.used.add(name)
        return name


def interval(ci: list[float] | None, signed: bool = False, digits: int = 2) -> str:
    """A 95% interval ``[lo, hi]`` as "lo to hi" (with signs for a difference)."""
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return "—"
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{fmt.format(ci[0])} to {fmt.format(ci[1])}"
