"""Helpers shared by the tune tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import checkpoint_pause

# The starting recipe's --set: 1,600 training images / 32 = 50 steps in one epoch, evaluated
# at steps 25 and 50 (positions 500 and 1000 per mille); one thread (deterministic on the CPU).
TINY = {"train.epochs": 1, "train.eval_points": 2, "system.threads": 1}
SPACE = """description = "lr and dropout of seed-baseline, for tests"
"optim.lr" = { log_uniform = [1e-4, 3e-3] }
"model.options.dropout" = { uniform = [0.0, 0.5] }
"""


def tiny_set(overrides: dict | None = None) -> list[str]:
    return [a for k, v in {**TINY, **(overrides or {})}.items() for a in ("--set", f"{k}={v}")]


def cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def quiet(line: str) -> None:
    pass


def start_until_paused(argv: list[str], pause: str) -> tuple[subprocess.Popen, list[str]]:
    """Start ``argv`` with the checkpoint pause ``pause`` ("phase@step", see
    tests/checkpoint_pause.py) and read its output until it says it paused (or 300 s
    pass): the process, alive and held there, and the lines it printed."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **checkpoint_pause.environment(pause)},
    )
    lines = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        lines.append(line)
        if "cifarlab-test: paused" in line or time.monotonic() > deadline:
            break
    return proc, lines
