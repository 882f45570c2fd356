"""Path mistakes for the CLI, shared by tests/cli/test_paths.py and the reliability suite.

The real ``cifarlab.cli.main.main`` runs in a forked child (so nothing it changes reaches
pytest) under one of:

- a read-only file system or a full disk: a tmpfs mounted in the child's own mount
  namespace (unshare(CLONE_NEWNS), then mount(2): root only, never visible outside the
  child). Where mounting is not allowed the child instead patches os.statvfs (and
  os.access) to report a read-only or full file system: ``mounts_allowed()`` says which
  ran, and the reliability ledger counts such a simulated case apart from real ones;
- permission denied: as root the child drops to user ``nobody`` (mode bits do not stop
  root); as anyone else the mode bits alone do.

Importable from any test folder: tests/ is on sys.path through tests/conftest.py.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NOBODY_UID = NOBODY_GID = 65534
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_REC, MS_PRIVATE = 1, 32, 16384, 1 << 18

IS_ROOT = os.geteuid() == 0


@dataclass
class Outcome:
    """What one CLI call did: exit status, output, and the tree before and after."""

    code: int
    out: str
    err: str
    before: dict[str, tuple] = field(default_factory=dict)
    after: dict[str, tuple] = field(default_factory=dict)

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def changed(self) -> list[str]:
        """Paths created, removed or modified (kind, mode, size, mtime, content) under the root."""
        keys = set(self.before) | set(self.after)
        return sorted(k for k in keys if self.before.get(k) != self.after.get(k))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed) -> (mode, size, mtime_ns, SHA-256 of a
    regular file's bytes, or None): a refused command must not create, remove or rewrite
    anything, which these show. A folder's mtime is left out (its entries show what
    changed); a FIFO or device is never opened; a file we may not read hashes as None."""
    import hashlib

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISDIR(st.st_mode):
                out[str(p.relative_to(root))] = (st.st_mode, st.st_size, None, None)
                continue
            digest = None
            if stat.S_ISREG(st.st_mode):
                try:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                except PermissionError:
                    pass
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def warm_imports() -> None:
    """Import everything the commands import lazily, before a child drops its privileges
    (as ``nobody`` it may not read this interpreter's files under /root)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401

    import cifarlab.cli.main
    import cifarlab.data
    import cifarlab.data.explore
    import cifarlab.evaluate
    import cifarlab.export
    import cifarlab.jobs.pool
    import cifarlab.jobs.training
    import cifarlab.predict
    import cifarlab.report.sections
    import cifarlab.rundir
    import cifarlab.studies.runner
    import cifarlab.studies.summary
    import cifarlab.train.distributed
    import cifarlab.train.loop  # noqa: F401

    cifarlab.cli.main.build_parser()


# --------------------------------------------------------------------------- environments


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(
    target: Path, size: str, read_only: bool, fill_to: int | None, no_inodes: bool = False
) -> None:
    """In the calling (child) process: a private mount namespace, a tmpfs of ``size`` on
    ``target``, filled until ``fill_to`` bytes are left free (None: empty) or, with
    ``no_inodes``, holding as many empty files as it has inodes; then read-only if asked."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # Private: nothing mounted here propagates back to the host's namespace.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    opts = f"size={size},mode=0755{',nr_inodes=8' if no_inodes else ''}".encode()
    if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, opts) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs {target}")
    if fill_to is not None:
        with open(target / "filler", "wb") as f:
            try:
                while True:
                    fs = os.statvfs(target)
                    free = fs.f_bavail * fs.f_frsize
                    if free <= fill_to:
                        break
                    f.write(b"\0" * min(free - fill_to, 1 << 16))
                    f.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    if no_inodes:
        try:
            for i in range(1000):
                (target / f"empty-{i}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    if read_only:
        flags = MS_REMOUNT | MS_RDONLY
        if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", flags, opts) != 0:
            raise OSError(ctypes.get_errno(), f"remount ro {target}")


def _simulate(target: Path, read_only: bool, no_inodes: bool = False) -> None:
    """Where no tmpfs can be mounted: make os.statvfs (and os.access) report ``target`` as
    read-only, full, or out of inodes. Simulates only what the checks ask: a write would
    still succeed."""
    real_statvfs, real_access = os.statvfs, os.access

    def under(path) -> bool:
        p = Path(os.fspath(path)).absolute()
        return p == target or target in p.parents

    def statvfs(path):
        st = real_statvfs(path)
        if not under(path):
            return st
        fields = list(st)
        if read_only:
            fields[8] |= os.ST_RDONLY  # f_flag
        elif no_inodes:
            fields[5], fields[6], fields[7] = max(fields[5], 1), 0, 0  # f_files, f_ffree, f_favail
        else:
            fields[3] = fields[4] = 0  # f_bfree, f_bavail
        return os.statvfs_result(fields)

    def access(path, mode, **kwargs):
        if read_only and under(path) and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    os.statvfs, os.access = statvfs, access


_MOUNTS: bool | None = None


def mounts_allowed() -> bool:
    """Whether this process may mount a tmpfs in a private namespace (tried in a child)."""
    global _MOUNTS
    if _MOUNTS is None:
        where = Path(tempfile.mkdtemp(prefix="cifarlab-mount-probe-"))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _mount_tmpfs(where, "64k", read_only=True, fill_to=None)
                code = 0
            except BaseException:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        _MOUNTS = os.waitstatus_to_exitcode(status) == 0
        where.rmdir()
    return _MOUNTS


@dataclass
class Env:
    """Where the child runs main(): an optional tmpfs (``mount``) and an optional user."""

    mount: Path | None = None
    size: str = "1m"
    read_only: bool = False
    fill_to: int | None = None  # bytes left free on the tmpfs (None: leave it empty)
    no_inodes: bool = False  # every inode of the tmpfs used (by empty files)
    as_nobody: bool = False
    setup: Callable[[], None] | None = None  # runs in the child, after the mount


def run_main(argv: list[str], root: Path, env: Env | None = None) -> Outcome:
    """``main(argv)`` in a forked child, cwd ``root``; the tree under ``root`` is listed in
    the child right before and after (the child alone sees its tmpfs)."""
    env = env or Env()
    warm_imports()
    io_dir = Path(tempfile.mkdtemp(prefix="cifarlab-paths-io-"))
    io_dir.chmod(0o777)  # a child that became ``nobody`` still writes its tree listing here
    out_f, err_f, tree_f = io_dir / "out", io_dir / "err", io_dir / "tree.json"
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 70
        try:
            import sys

            fd_out = os.open(out_f, os.O_WRONLY | os.O_CREAT, 0o666)
            fd_err = os.open(err_f, os.O_WRONLY | os.O_CREAT, 0o666)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            if env.mount is not None:
                if mounts_allowed():
                    _mount_tmpfs(env.mount, env.size, env.read_only, env.fill_to, env.no_inodes)
                else:
                    _simulate(env.mount.absolute(), env.read_only, env.no_inodes)
            if env.setup is not None:
                env.setup()
            if env.as_nobody and IS_ROOT:
                os.setgroups([])
                os.setgid(NOBODY_GID)
                os.setuid(NOBODY_UID)
            os.chdir(root)
            before = snapshot(root)
            from cifarlab.cli.main import main

            code = main(argv)
            tree_f.write_text(json.dumps({"before": before, "after": snapshot(root)}))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    trees = json.loads(tree_f.read_text()) if tree_f.exists() else {"before": {}, "after": {}}
    outcome = Outcome(
        os.waitstatus_to_exitcode(status),
        out_f.read_text(errors="replace"),
        err_f.read_text(errors="replace"),
        {k: tuple(v) for k, v in trees["before"].items()},
        {k: tuple(v) for k, v in trees["after"].items()},
    )
    shutil.rmtree(io_dir, ignore_errors=True)
    return outcome


def run_in_process(argv: list[str], root: Path, capsys) -> Outcome:
    """``main(argv)`` in this process (cwd ``root``), its output taken from capsys."""
    from cifarlab.cli.main import main

    old = os.getcwd()
    before = snapshot(root)
    os.chdir(root)
    try:
        code = main(argv)
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, before, snapshot(root))


# --------------------------------------------------------------------------- the tree


@contextmanager
def open_tree() -> Iterator[Path]:
    """A temporary folder that user ``nobody`` may enter (pytest's tmp_path may not: its
    parent is 0700 when pytest runs as root), removed afterwards whatever its modes."""
    root = Path(tempfile.mkdtemp(prefix="cifarlab-paths-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                p = Path(dirpath) / d
                if not p.is_symlink():
                    p.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def make_run(root: Path, source: Path, name: str = "run") -> Path:
    """A copy of the finished run ``source`` under ``root``, readable by anyone."""
    run = root / name
    shutil.copytree(source, run)
    for dirpath, _, filenames in os.walk(run):
        Path(dirpath).chmod(0o755)
        for f in filenames:
            (Path(dirpath) / f).chmod(0o644)
    return run


# --------------------------------------------------------------------------- the cases

# A few seconds of training on the bundled sample, for the commands that train on main.
QUICK = [
    "--data-dir",
    "sample",
    "--set",
    "train.epochs=0.05",
    "--set",
    "train.eval_points=1",
    "--set",
    "system.threads=1",
]


@dataclass
class Case:
    """One path mistake: ``make(root, run)`` builds it under ``root`` (``run``: a finished
    run folder there) and returns the command line and the path its error line must name;
    the line must also hold ``phrase``; ``env`` (given root) runs it in a child."""

    name: str
    kind: str
    make: Callable[[Path, Path], tuple[list[str], str]]
    phrase: str
    env: Callable[[Path], Env] | None = None
    needs_root: bool = False  # mknod


def _file(root: Path, name: str = "afile") -> str:
    (root / name).write_text("a file of the user's\n")
    return name


def _dir(root: Path, name: str, mode: int | None = None, files: tuple[str, ...] = ()) -> str:
    (root / name).mkdir()
    for f in files:
        (root / name / f).write_text("the user's\n")
    if mode is not None:
        (root / name).chmod(mode)
    return name


def _fifo(root: Path) -> str:
    os.mkfifo(root / "fifo")
    return "fifo"


def _socket(root: Path) -> str:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()  # the socket file stays
    return "sock"


def _chardev(root: Path) -> str:
    os.mknod(root / "chardev", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
    return "chardev"


def _dangling(root: Path, name: str = "dangling") -> str:
    (root / name).symlink_to(root / "nowhere")
    return name


def _loop(root: Path) -> str:
    (root / "loop").symlink_to(root / "loop")
    return "loop"


def _secret(root: Path, run: Path) -> str:
    """A folder nobody but its owner may enter, holding a checkpoint."""
    (root / "secret").mkdir()
    shutil.copyfile(run / "checkpoint.pt", root / "secret" / "checkpoint.pt")
    (root / "secret").chmod(0o000)
    return "secret"


def _ro(root: Path) -> Env:
    return Env(mount=root / "ro", read_only=True)


def _full(root: Path) -> Env:
    return Env(mount=root / "full", size="256k", fill_to=0)


def _no_inodes(root: Path) -> Env:
    return Env(mount=root / "full", no_inodes=True)


def _nobody(root: Path) -> Env:
    return Env(as_nobody=True)


def _mountpoint(root: Path, name: str) -> str:
    (root / name).mkdir()
    return name


def _escaping(run: Path, name: str, argv: list[str], shown: str) -> tuple[list[str], str]:
    """run/NAME -> a folder outside the run, which the user never named."""
    (run.parent / "elsewhere").mkdir()
    (run / name).symlink_to(run.parent / "elsewhere")
    return argv, shown


D, S = "--data-dir", "sample"

# fmt: off
CASES: list[Case] = [
    # missing
    Case("evaluate CHECKPOINT missing", "missing", lambda r, run: (["evaluate", "nope.pt"], "nope.pt"), "not found"),
    Case("predict CHECKPOINT missing", "missing", lambda r, run: (["predict", "nope.pt", "x.png"], "nope.pt"), "not found"),
    Case("export CHECKPOINT missing", "missing", lambda r, run: (["export", "nope.pt"], "nope.pt"), "not found"),
    Case("train --resume missing", "missing", lambda r, run: (["train", "--resume", "nope"], "nope"), "not found"),
    Case("data --data-dir missing", "missing", lambda r, run: (["data", D, "nope", "--no-figures"], "nope"), "not found"),
    Case("report DIR missing", "missing", lambda r, run: (["report", "nope", "-o", "r.html"], "nope"), "not found"),
    Case("studies summarize DIR missing", "missing", lambda r, run: (["studies", "summarize", "nope"], "nope"), "not found"),
    # a file where a folder is needed, and the reverse
    Case("train --out a file", "wrong kind", lambda r, run: (["train", *QUICK, "--out", _file(r)], "afile"), "not a folder"),
    Case("train --resume a checkpoint file", "wrong kind", lambda r, run: (["train", "--resume", "run/checkpoint.pt"], "run/checkpoint.pt"), "not a file"),
    Case("data --out a file", "wrong kind", lambda r, run: (["data", D, S, "--out", _file(r)], "afile"), "not a folder"),
    Case("evaluate --out a file", "wrong kind", lambda r, run: (["evaluate", "run", "--out", _file(r)], "afile"), "not a folder"),
    Case("export --out a file", "wrong kind", lambda r, run: (["export", "run", "--out", _file(r)], "afile"), "not a folder"),
    Case("seeds --out a file", "wrong kind", lambda r, run: (["seeds", "-n", "1", *QUICK, "--out", _file(r)], "afile"), "not a folder"),
    Case("bench --out a file", "wrong kind", lambda r, run: (["bench", "--recipe", "seed-baseline", *QUICK, "--out", _file(r)], "afile"), "not a folder"),
    Case("studies summarize a file", "wrong kind", lambda r, run: (["studies", "summarize", _file(r)], "afile"), "not a folder"),
    Case("report -o under a file", "wrong kind", lambda r, run: (["report", "run", "-o", _file(r) + "/r.html"], "afile/r.html"), "not a folder"),
    Case("report -o a folder", "wrong kind", lambda r, run: (["report", "run", "-o", _dir(r, "adir")], "adir"), "not a file"),
    Case("train --out a file whose name holds a newline", "wrong kind", lambda r, run: (["train", *QUICK, "--out", _file(r, "bad\nname")], "bad?name"), "not a folder"),
    # FIFOs, sockets, devices: reading one blocks, replacing one clobbers it
    Case("evaluate CHECKPOINT a FIFO", "special file", lambda r, run: (["evaluate", _fifo(r)], "fifo"), "named pipe"),
    Case("predict CHECKPOINT a FIFO", "special file", lambda r, run: (["predict", _fifo(r), "x.png"], "fifo"), "named pipe"),
    Case("data --data-dir a FIFO", "special file", lambda r, run: (["data", D, _fifo(r), "--no-figures"], "fifo"), "named pipe"),
    Case("report -o a FIFO", "special file", lambda r, run: (["report", "run", "-o", _fifo(r)], "fifo"), "named pipe"),
    Case("train --out a socket", "special file", lambda r, run: (["train", *QUICK, "--out", _socket(r)], "sock"), "socket"),
    Case("report -o a character device", "special file", lambda r, run: (["report", "run", "-o", _chardev(r)], "chardev"), "character device", needs_root=True),
    # broken symbolic links
    Case("train --out a broken link", "broken link", lambda r, run: (["train", *QUICK, "--out", _dangling(r)], "dangling"), "broken symbolic link"),
    Case("train --resume a broken link", "broken link", lambda r, run: (["train", "--resume", _dangling(r)], "dangling"), "broken symbolic link"),
    Case("data --out a broken link", "broken link", lambda r, run: (["data", D, S, "--out", _dangling(r)], "dangling"), "broken symbolic link"),
    Case("data --data-dir through a broken link", "broken link", lambda r, run: (["data", D, _dangling(r) + "/cifar", "--no-figures"], "dangling/cifar"), "broken symbolic link"),
    Case("evaluate CHECKPOINT a broken link", "broken link", lambda r, run: (["evaluate", _dangling(r, "ckpt.pt")], "ckpt.pt"), "broken symbolic link"),
    Case("report -o a broken link", "broken link", lambda r, run: (["report", "run", "-o", _dangling(r, "r.html")], "r.html"), "broken symbolic link"),
    Case("train --out a symbolic link loop", "broken link", lambda r, run: (["train", *QUICK, "--out", _loop(r)], "loop"), "link loop"),
    # a link inside the run that leads out of it
    Case("evaluate: run/evaluation links out of the run", "escaping link", lambda r, run: _escaping(run, "evaluation", ["evaluate", "run"], "run/evaluation/none"), "leads out of"),
    Case("export: run/export links out of the run", "escaping link", lambda r, run: _escaping(run, "export", ["export", "run"], "run/export"), "leads out of"),
    # permission denied
    Case("data --out in a folder we may not write", "permission denied", lambda r, run: (["data", D, S, "--out", _dir(r, "locked", 0o555) + "/figs"], "locked/figs"), "permission denied", _nobody),
    Case("train --out in a folder we may not write", "permission denied", lambda r, run: (["train", *QUICK, "--out", _dir(r, "locked", 0o555) + "/run2"], "locked/run2"), "permission denied", _nobody),
    Case("evaluate --out in a folder we may not write", "permission denied", lambda r, run: (["evaluate", "run", "--out", _dir(r, "locked", 0o555) + "/ev"], "locked/ev"), "permission denied", _nobody),
    Case("export --out in a folder we may not write", "permission denied", lambda r, run: (["export", "run", "--out", _dir(r, "locked", 0o555) + "/ex"], "locked/ex"), "permission denied", _nobody),
    Case("report -o in a folder we may not write", "permission denied", lambda r, run: (["report", "run", "-o", _dir(r, "locked", 0o555) + "/r.html"], "locked/r.html"), "permission denied", _nobody),
    Case("seeds --out in a folder we may not write", "permission denied", lambda r, run: (["seeds", "-n", "1", *QUICK, "--out", _dir(r, "locked", 0o555) + "/study"], "locked/study"), "permission denied", _nobody),
    Case("data --data-dir a folder we may not read", "permission denied", lambda r, run: (["data", D, _secret(r, run), "--no-figures"], "secret"), "permission denied", _nobody),
    Case("report -o in a folder we may not enter", "permission denied", lambda r, run: (["report", "run", "-o", _secret(r, run) + "/r.html"], "secret/r.html"), "permission denied", _nobody),
    Case("data --data-dir below a folder we may not enter", "permission denied", lambda r, run: (["data", D, _secret(r, run) + "/a/b", "--no-figures"], "secret/a/b"), "permission denied", _nobody),
    Case("evaluate CHECKPOINT in a folder we may not enter", "permission denied", lambda r, run: (["evaluate", _secret(r, run) + "/checkpoint.pt"], "secret/checkpoint.pt"), "permission denied", _nobody),
    # read-only file system
    Case("report -o on a read-only file system", "read-only", lambda r, run: (["report", "run", "-o", _mountpoint(r, "ro") + "/r.html"], "ro/r.html"), "read-only file system", _ro),
    Case("train --out on a read-only file system", "read-only", lambda r, run: (["train", *QUICK, "--out", _mountpoint(r, "ro") + "/run2"], "ro/run2"), "read-only file system", _ro),
    Case("data --out on a read-only file system", "read-only", lambda r, run: (["data", D, S, "--out", _mountpoint(r, "ro") + "/figs"], "ro/figs"), "read-only file system", _ro),
    Case("evaluate --out on a read-only file system", "read-only", lambda r, run: (["evaluate", "run", "--out", _mountpoint(r, "ro") + "/ev"], "ro/ev"), "read-only file system", _ro),
    Case("export --out on a read-only file system", "read-only", lambda r, run: (["export", "run", "--out", _mountpoint(r, "ro") + "/ex"], "ro/ex"), "read-only file system", _ro),
    Case("seeds --out on a read-only file system", "read-only", lambda r, run: (["seeds", "-n", "1", *QUICK, "--out", _mountpoint(r, "ro") + "/study"], "ro/study"), "read-only file system", _ro),
    # a full disk
    Case("data --out on a full disk", "full disk", lambda r, run: (["data", D, S, "--out", _mountpoint(r, "full") + "/figs"], "full/figs"), "disk is full", _full),
    Case("train --out on a full disk", "full disk", lambda r, run: (["train", *QUICK, "--out", _mountpoint(r, "full") + "/run2"], "full/run2"), "disk is full", _full),
    Case("report -o on a full disk", "full disk", lambda r, run: (["report", "run", "-o", _mountpoint(r, "full") + "/r.html"], "full/r.html"), "disk is full", _full),
    Case("export --out on a full disk", "full disk", lambda r, run: (["export", "run", "--out", _mountpoint(r, "full") + "/ex"], "full/ex"), "disk is full", _full),
    Case("data --out on a disk without free inodes", "full disk", lambda r, run: (["data", D, S, "--out", _mountpoint(r, "full") + "/figs"], "full/figs"), "no free inodes", _no_inodes),
    Case("evaluate --out on a disk without free inodes", "full disk", lambda r, run: (["evaluate", "run", "--out", _mountpoint(r, "full") + "/ev"], "full/ev"), "no free inodes", _no_inodes),
    # an output folder that holds someone else's files
    Case("train --out a folder of the user's", "holds other files", lambda r, run: (["train", *QUICK, "--out", _dir(r, "mine", files=("notes.txt",))], "mine"), "holds other files"),
    Case("seeds --out a folder of the user's", "holds other files", lambda r, run: (["seeds", "-n", "1", *QUICK, "--out", _dir(r, "mine", files=("notes.txt",))], "mine"), "holds other files"),
    Case("bench --out a folder of the user's", "holds other files", lambda r, run: (["bench", "--recipe", "seed-baseline", *QUICK, "--out", _dir(r, "mine", files=("notes.txt",))], "mine"), "holds other files"),
]
# fmt: on

CASE_BY_NAME = {c.name: c for c in CASES}
