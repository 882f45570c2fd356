"""TOML reading on every Python cifarlab supports: the standard library's ``tomllib`` from
3.11, its backport ``tomli`` on 3.10. The one place that knows the difference."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from tomllib import loads
else:  # pragma: no cover - Python 3.10
    from tomli import loads

__all__ = ["loads"]
