"""Helpers for the reliability suite: the ledger of counted cases, processes, results.

See conftest.py for how the ledger is written and what a case counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# Category key -> (order, what is tried). The report lists categories in this order.
CATEGORIES: dict[str, str] = {
    "kill": "SIGKILL of a training run at a random moment or inside a checkpoint write, then resume",
    "write_failure": "checkpoint write fails (ENOSPC / EIO from torch.save, write, fsync, link, rename, JSON)",
    "damaged_checkpoint": "truncated, bit-flipped, empty or overwritten checkpoint file",
    "hostile_pickle": "dataset batch pickle carrying a code-execution payload",
    "hostile_checkpoint": "checkpoint carrying arbitrary Python objects or a code-execution payload",
    "hostile_tarball": "tarball with absolute / '..' paths, escaping links or device members",
    "fuzz_batch": "fuzzed batch files (random bytes, truncations, mutations)",
    "fuzz_tarball": "fuzzed tarball (random bytes, truncations, mutations)",
    "fuzz_image": "fuzzed image-folder files (random bytes, truncations, mutations)",
    "fuzz_checkpoint": "fuzzed checkpoint (random bytes, truncations, mutations)",
    "fuzz_recipe": "fuzzed recipe TOML and --set overrides",
    "lock": "two runs into the same output directory",
    "bad_recipe": "bad recipe values (unknown key, wrong type, out of range)",
    "nonfinite": "non-finite loss injected during training",
    "odd_images": "pictures for predict: 16-bit, palette, GIF/BMP/TIFF in folders, a decompression-bomb header, a FIFO",
    "hostile_report": "markup and Markdown in every string a run shows in a report (HTML and Markdown)",
    "resume_recipe": "a resume asked to change its recipe: --set without --allow-change, --recipe, a hand-edited recipe.toml",
    "evaluate_outputs": "cifarlab evaluate beside a training's outputs, and an evaluation.json it cannot write",
    "recipe_bounds": "recipes past sensible bounds, non-UTF-8 or oversized recipe files, recipe paths that are not files, recipes stored by older runs",
    "user_paths": "path mistakes on the command line (missing, wrong kind, broken or escaping link, permission denied, read-only or full disk, a folder of the user's)",
}

RESULTS_ENV = "CIFARLAB_RELIABILITY_RESULTS"

# The tiny recipe: 40 steps of 16 images (0.4 epoch of the 1,600-image training split),
# a checkpoint every 4 steps, 2 evaluation points, one thread (identical numerics in
# every process), fp32.
TOTAL_STEPS = 40
CHECKPOINT_EVERY = 4
RECIPE_ARGS = [
    "--recipe",
    "seed-improved",
    "--data-dir",
    "sample",
    "--no-progress",
    "--set",
    "train.epochs=0.4",
    "--set",
    "train.batch_size=16",
    "--set",
    f"train.checkpoint_every={CHECKPOINT_EVERY}",
    "--set",
    "train.eval_points=2",
    "--set",
    "system.threads=1",
    "--set",
    "system.device='cpu'",
]
OVERRIDES: dict[str, Any] = {
    "train.epochs": 0.4,
    "train.batch_size": 16,
    "train.checkpoint_every": CHECKPOINT_EVERY,
    "train.eval_points": 2,
    "system.threads": 1,
    "system.device": "cpu",
}
TIME_KEYS = ("train_time_s", "wall_time_s", "images_per_s", "provenance")


# --------------------------------------------------------------------------- the ledger


class Case:
    """One tried case; set ``lost`` when data was lost, ``note`` to say what happened."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lost = False
        self.note = ""


class Ledger:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def case(self, category: str, name: str) -> Iterator[Case]:
        """Record one case: handled when the block finishes, not handled when it raises."""
        assert category in CATEGORIES, category
        c = Case(name)
        try:
            yield c
        except BaseException as exc:
            self._add(category, c, handled=False, error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        self._add(category, c, handled=not c.lost, error="")

    def _add(self, category: str, c: Case, handled: bool, error: str) -> None:
        self.cases.append(
            {
                "category": category,
                "case": c.name,
                "handled": handled,
                "lost": c.lost,
                "note": c.note,
                "error": error,
            }
        )

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self.cases:
            s = out.setdefault(row["category"], {"tried": 0, "handled": 0, "lost": 0})
            s["tried"] += 1
            s["handled"] += int(row["handled"])
            s["lost"] += int(row["lost"])
        return out


# --------------------------------------------------------------------------- processes


class Child:
    """A training process (forked from this one, or a fresh `python -m cifarlab`)."""

    def __init__(self, pid: int | None, popen: subprocess.Popen | None, log: Path) -> None:
        self.pid = pid if pid is not None else popen.pid
        self.popen = popen
        self.log = log
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            self.returncode = self.popen.poll()
            return self.returncode
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float = 300) -> int:
        deadline = time.time() + timeout
        while self.poll() is None:
            if time.time() > deadline:
                self.kill()
                raise AssertionError(f"process {self.pid} did not finish in {timeout} s")
            time.sleep(0.02)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            while self.poll() is None:
                time.sleep(0.005)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_output(self, text: str, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while text not in self.output():
            if self.poll() is not None:
                raise AssertionError(f"process ended before {text!r}:\n{self.output()[-2000:]}")
            if time.time() > deadline:
                self.kill()
                raise AssertionError(f"no {text!r} within {timeout} s")
            time.sleep(0.01)


_WARM = False


def warm_imports() -> None:
    """Import here, once, what every training run imports lazily (torch._dynamo through the
    optimizers, matplotlib through the plots), so forked runs do not each pay for it."""
    global _WARM
    if _WARM:
        return
    import matplotlib

    matplotlib.use("Agg")
    import cifarlab.figures  # noqa: F401
    import cifarlab.train.loop  # noqa: F401
    from cifarlab.cli.main import build_parser

    build_parser()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo
    _WARM = True


def start_cli(argv: list[str], log: Path, env: dict[str, str] | None = None, fork: bool = True):
    """Run ``cifarlab ARGV`` in a child process, its output going to ``log``.

    ``fork=True`` forks this process (torch already imported: saves seconds per run) and
    calls the same ``main()`` as ``python -m cifarlab``; ``fork=False`` starts a fresh
    interpreter.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if fork:
        warm_imports()
    if not fork:
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "cifarlab", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return Child(None, popen, log)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 70
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ.clear()
            os.environ.update(env)
            from cifarlab.cli.main import main

            code = main(argv)
        except BaseException as exc:  # report, then exit without running pytest's atexit
            try:
                print(f"child crashed: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                code = 71
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return Child(pid, None, log)


def run_cli(argv: list[str], log: Path, **kwargs) -> Child:
    child = start_cli(argv, log, **kwargs)
    child.wait()
    return child


# --------------------------------------------------------------------------- results


def weights(run: Path) -> dict[str, torch.Tensor]:
    from cifarlab.rundir import load_checkpoint

    return load_checkpoint(run / "checkpoint.pt")["model"]


def metrics_without_times(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    for key in TIME_KEYS:
        m.pop(key, None)
    return m


def history_without_times(run: Path) -> dict:
    h = json.loads((run / "history.json").read_text())
    h.pop("time_s", None)
    return h


def same_result(run: Path, reference: Path) -> bool:
    """True when ``run`` ended exactly as the uninterrupted reference: weights, metrics, history."""
    a, b = weights(reference), weights(run)
    return (
        a.keys() == b.keys()
        and all(torch.equal(a[k], b[k]) for k in a)
        and metrics_without_times(run) == metrics_without_times(reference)
        and history_without_times(run) == history_without_times(reference)
    )


def temp_files(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp-" in p.name)


def train_argv(out: Path) -> list[str]:
    return ["train", *RECIPE_ARGS, "--out", str(out)]


# --------------------------------------------------------------------------- small data


def tiny_python_dir(dest: Path, per_batch: int = 10) -> Path:
    """A cifar-10-batches-py folder holding the first ``per_batch`` images of each bundled
    sample batch, written as the official files are (protocol 2, bytes keys): fast to read."""
    import pickle

    from cifarlab.data import sample_dir

    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for src in sorted(sample_dir().iterdir()):
        with open(src, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
        if b"data" in obj:
            obj = {**obj, b"data": obj[b"data"][:per_batch], b"labels": obj[b"labels"][:per_batch]}
        (folder / src.name).write_bytes(pickle.dumps(obj, protocol=2))
    return folder


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (links not followed) -> (size, mtime_ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def payload_runs(load, sentinel: Path) -> bool:
    """Whether ``load()`` (a plain, unrestricted loader) runs the payload: proves it is live.

    Runs in a forked child, so nothing it does touches this process.
    """
    sentinel.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            load()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    ran = sentinel.exists()
    sentinel.unlink(missing_ok=True)
    return ran
