"""Helpers for the reliability suite: the ledger of counted cases, processes, results.

The ledger (how to add a row and its cases)
===========================================

Every fault or hostile input the suite tries is one *case* in a *category* (one row of
docs/RELIABILITY.md). To add a row:

1. Register it in ``CATEGORIES`` below: ``"key": Category("what is tried", expected=N)``,
   N being the number of cases the row's tests record in a full run (``not_run`` cases
   included). ``scripts/reliability_report.py`` refuses to write the document when any
   row's count differs from N (a ``-k`` run, a deselected or skipped test, an early
   failure), so change N in the same commit as the cases.
2. Record each case in the test with the ``ledger`` fixture::

       with ledger.case("key", "what this case does", guard=[run_dir, users_file]) as case:
           case.allow(run_dir / "evaluation")  # what the command is meant to create or change
           ... apply the fault, assert the promise ...
           case.check(resumed != reference, "resumed run vs the uninterrupted one")
           case.note = "what happened, in a few words"

   *Handled*: the block finished and nothing was lost. *Lost* is measured, never assumed,
   by one or both of:

   - ``guard=[paths]`` (or ``case.guard(*paths)`` inside the block, once the case's own
     setup is done): every path under them is snapshot before and after (kind, mode, size,
     mtime, SHA-256 of each regular file; a path that does not exist is recorded absent);
     any difference outside ``case.allow(path)`` (that path only) and ``case.allow_tree(path)``
     (it and everything under it) is data lost. Guard what the case could
     harm: the run, the user's files beside it, the parent folders, absolute paths a
     hostile payload names;
   - ``case.check(lost, "what was compared")``: a loss no snapshot shows (a resumed run
     that differs, a damaged file read back as different data, a payload that ran).

   A case that can harm no file passes ``na="why"`` instead (e.g. a recipe checked in
   memory); the row then says "n/a" with that reason. A case with neither a measurement
   nor ``na`` fails: a "0 lost" in the document is always a measured 0.
3. ``case.simulated = True`` when the fault was simulated (e.g. a read-only disk reported
   by a patched ``os.statvfs`` instead of a real read-only mount): the document counts
   simulated cases apart. ``ledger.not_run("key", name, reason)`` records a case this
   machine cannot run (it counts toward ``expected`` and is listed with its reason).

See conftest.py for where the ledger is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import checkpoint_pause


@dataclass(frozen=True)
class Category:
    """One row of docs/RELIABILITY.md: what is tried, and how many cases a full run records."""

    what: str
    expected: int


# The report lists categories in this order.
CATEGORIES: dict[str, Category] = {
    "kill": Category("SIGKILL of a training run at a random moment or inside a checkpoint write, then resume", 10),
    "write_failure": Category("checkpoint write fails (ENOSPC / EIO from torch.save, write, fsync, link, rename, JSON)", 7),
    "damaged_checkpoint": Category("truncated, bit-flipped, empty or overwritten checkpoint file", 78),
    "hostile_pickle": Category("dataset batch pickle carrying a code-execution payload", 42),
    "hostile_checkpoint": Category("checkpoint carrying arbitrary Python objects or a code-execution payload", 13),
    "hostile_tarball": Category("tarball with absolute / '..' paths, escaping links or device members", 14),
    "fuzz_batch": Category("fuzzed batch files (random bytes, truncations, mutations)", 150),
    "fuzz_tarball": Category("fuzzed tarball (random bytes, truncations, mutations)", 150),
    "fuzz_image": Category("fuzzed image-folder files (random bytes, truncations, mutations)", 150),
    "fuzz_checkpoint": Category("fuzzed checkpoint (random bytes, truncations, mutations)", 150),
    "fuzz_recipe": Category("fuzzed recipe TOML and --set overrides", 150),
    "lock": Category("two runs into the same output directory", 6),
    "bad_recipe": Category("bad recipe values (unknown key, wrong type, out of range)", 43),
    "nonfinite": Category("non-finite loss injected during training", 6),
    "odd_images": Category("pictures for predict: 16-bit, palette, GIF/BMP/TIFF in folders, a decompression-bomb header, a FIFO", 6),
    "hostile_report": Category("markup and Markdown in every string a run shows in a report (HTML and Markdown)", 2),
    "resume_recipe": Category("a resume asked to change its recipe: --set without --allow-change, --recipe, a hand-edited recipe.toml", 3),
    "evaluate_outputs": Category("cifarlab evaluate beside a training's outputs, and an evaluation.json it cannot write", 2),
    "recipe_bounds": Category("recipes past sensible bounds, non-UTF-8 or oversized recipe files, recipe paths that are not files, recipes stored by older runs", 28),
    "foreign_outputs": Category("outputs over a command's own input or into a run, study or search directory it does not own, a report figure folder it did not make, a missing parent folder, an older checkpoint's evaluation", 19),
    "stored_numbers": Category("stored numbers read back of the wrong type or out of range: temperature 1e-300 / 1e308 / NaN, metrics, evaluation, corruptions and tune summary values", 19),
    "tune_storage": Category("tune storage URLs (postgresql:// and mysql:// without a driver, in-memory SQLite) and starts that fail", 8),
    "resume_finished": Category("a resume asked to extend, shorten or change a finished run", 4),
    "recipe_bounds_29": Category("recipe bounds added: milestones out of order or past the end, sync_bn off CUDA, 0 epochs, negative seeds", 7),
    "user_paths": Category("path mistakes on the command line (missing, wrong kind, broken or escaping link, permission denied, read-only or full disk, a folder of the user's)", 59),
}  # fmt: skip

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

Snapshot = dict[str, tuple | None]


def snapshot(paths: Iterable[Path]) -> Snapshot:
    """Every path under ``paths`` (links not followed) -> what it is: ("file", mode, size,
    mtime_ns, sha256), ("dir", mode), ("link", target) or ("other", mode, rdev); a guarded
    path that does not exist -> None. A FIFO or device is never opened."""
    out: Snapshot = {}

    def one(p: Path) -> None:
        try:
            st = p.lstat()
        except FileNotFoundError:
            out[str(p)] = None
            return
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[str(p)] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, digest.hexdigest())
        elif stat.S_ISDIR(st.st_mode):
            # A folder's mtime is left out: its entries, compared one by one, show what changed.
            out[str(p)] = ("dir", st.st_mode)
            for child in sorted(p.iterdir()):
                one(child)
        elif stat.S_ISLNK(st.st_mode):
            out[str(p)] = ("link", os.readlink(p))
        else:
            out[str(p)] = ("other", st.st_mode, st.st_rdev)

    for path in paths:
        one(Path(path).absolute())
    return out


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths created, removed or changed between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class Case:
    """One tried case; see the top of this file for ``guard``, ``allow``, ``check``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.note = ""
        self.simulated = False
        self.na = ""  # why this case can lose no data (see Ledger.case)
        self.losses: list[str] = []  # what was lost, one phrase each
        self.measures: list[str] = []  # how loss was measured: "snapshot", checks' names
        self._guarded: list[Path] = []
        self._before: Snapshot = {}
        self._allowed: list[Path] = []
        self._allowed_trees: list[Path] = []

    @property
    def lost(self) -> bool:
        return bool(self.losses)

    def guard(self, *paths: Path) -> None:
        """Snapshot ``paths`` now; at the end of the case any change under them is a loss."""
        self._guarded += [Path(p).absolute() for p in paths]
        self._before.update(snapshot(paths))
        if "snapshot" not in self.measures:
            self.measures.append("snapshot")

    def allow(self, *paths: Path) -> None:
        """Changes of exactly ``paths`` are what the case's command is meant to do."""
        self._allowed += [Path(p).absolute() for p in paths]

    def allow_tree(self, *paths: Path) -> None:
        """Changes of ``paths`` and of anything under them are what the command is meant to do."""
        self._allowed_trees += [Path(p).absolute() for p in paths]

    def check(self, lost: bool, what: str) -> bool:
        """Record a comparison that measures loss; ``lost`` true counts the case lost."""
        if what not in self.measures:
            self.measures.append(what)
        if lost:
            self.losses.append(what)
        return lost

    def _finish_snapshot(self) -> list[str]:
        if not self._guarded:
            return []
        after = snapshot(self._guarded)

        def allowed(key: str) -> bool:
            p = Path(key)
            return p in self._allowed or any(p == a or a in p.parents for a in self._allowed_trees)

        diff = [k for k in changed(self._before, after) if not allowed(k)]
        if diff:
            self.losses.append(f"changed: {', '.join(diff[:5])}")
        return diff


class Ledger:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def case(
        self, category: str, name: str, guard: Iterable[Path] = (), na: str = ""
    ) -> Iterator[Case]:
        """Record one case: handled when the block finishes and nothing was lost.

        ``guard``: paths snapshot now and compared at the end; ``na``: why this case can
        lose no data (then nothing is measured and the row says so)."""
        assert category in CATEGORIES, f"register {category!r} in relhelpers.CATEGORIES"
        c = Case(name)
        guard = list(guard)
        if guard:
            c.guard(*guard)
        try:
            yield c
        except BaseException as exc:
            c._finish_snapshot()
            self._add(category, c, na, error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        diff = c._finish_snapshot()
        na = na or c.na
        if not c.measures and not na:
            msg = "data loss was not measured: pass guard=, call case.check(), or give na="
            self._add(category, c, na, error=msg)
            raise AssertionError(f"{name}: {msg}")
        self._add(category, c, na, error="")
        assert not diff, f"written, removed or changed: {diff[:10]}"

    def not_run(self, category: str, name: str, reason: str) -> None:
        """A case this machine cannot run (counted toward the row's expected number)."""
        assert category in CATEGORIES, category
        self.cases.append(
            {"category": category, "case": name, "not_run": reason, "handled": False,
             "lost": False, "measured": [], "na": "", "simulated": False, "note": "",
             "losses": [], "error": ""}
        )  # fmt: skip

    def _add(self, category: str, c: Case, na: str, error: str) -> None:
        self.cases.append(
            {
                "category": category,
                "case": c.name,
                "not_run": "",
                "handled": not error and not c.lost,
                "lost": c.lost,
                "losses": c.losses,
                "measured": c.measures,
                "na": na if not c.measures else "",
                "simulated": c.simulated,
                "note": c.note,
                "error": error,
            }
        )

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in self.cases:
            s = out.setdefault(
                row["category"],
                {"tried": 0, "handled": 0, "lost": 0, "measured": 0, "na": 0,
                 "simulated": 0, "simulated_handled": 0, "not_run": 0,
                 "measures": [], "na_reasons": []},
            )  # fmt: skip
            if row["not_run"]:
                s["not_run"] += 1
                continue
            s["tried"] += 1
            s["handled"] += int(row["handled"])
            s["lost"] += int(row["lost"])
            s["measured"] += int(bool(row["measured"]))
            s["simulated"] += int(row["simulated"])
            s["simulated_handled"] += int(row["simulated"] and row["handled"])
            for m in row["measured"]:
                kind = "snapshot" if m == "snapshot" else m
                if kind not in s["measures"]:
                    s["measures"].append(kind)
            if row["na"]:
                s["na"] += 1
                if row["na"] not in s["na_reasons"]:
                    s["na_reasons"].append(row["na"])
        return out


def same_content(a: Any, b: Any) -> bool:
    """Whether two things read back hold exactly the same content: tensors and arrays by
    dtype and value, dataclasses field by field, containers entry by entry (NaN == NaN)."""
    import dataclasses

    import numpy as np

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same_content(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same_content(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_content, a, b))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


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


def start_cli(
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    fork: bool = True,
    pause: str | None = None,
):
    """Run ``cifarlab ARGV`` in a child process, its output going to ``log``.

    ``fork=True`` forks this process (torch already imported: saves seconds per run) and
    calls the same ``main()`` as ``python -m cifarlab``; ``fork=False`` starts a fresh
    interpreter. ``pause``: hold the child at a moment of a checkpoint write
    ("PHASE@STEP", tests/checkpoint_pause.py).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if pause is not None and not fork:
        env.update(checkpoint_pause.environment(pause))
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
            if pause is not None:
                checkpoint_pause.install(pause)
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


SAME_AS_REFERENCE = "final weights, metrics, history vs the uninterrupted run"


def temp_files(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp-" in p.name)


def train_argv(out: Path) -> list[str]:
    return ["train", *RECIPE_ARGS, "--out", str(out)]


# --------------------------------------------------------------------------- small data


def tiny_python_dir(dest: Path, per_batch: int = 10) -> Path:
    """A cifar-10-batches-py folder holding the first ``per_batch`` images of each bundled
    sample batch, written as the official files are (protocol 2, bytes keys): fast to read.

    Its md5 sums are no known copy's, so it carries them in an MD5SUMS file, as a user
    vouches for a copy of their own (docs/guide/data.md): the reader verifies them."""
    import pickle

    from cifarlab.data import sample_dir

    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    sums = []
    for src in sorted(sample_dir().iterdir()):
        with open(src, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
        if b"data" in obj:
            obj = {**obj, b"data": obj[b"data"][:per_batch], b"labels": obj[b"labels"][:per_batch]}
        raw = pickle.dumps(obj, protocol=2)
        (folder / src.name).write_bytes(raw)
        sums.append(f"{hashlib.md5(raw).hexdigest()}  {src.name}\n")
    (folder / "MD5SUMS").write_text("".join(sums))
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
