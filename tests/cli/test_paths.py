"""Path mistakes a new user makes end in one `cifarlab: error:` line naming the path, exit 2,
and nothing written anywhere: one test per kind of mistake, through the real CLI.

The cases live in tests/pathfaults.py (the reliability suite runs all of them, counted);
here one per kind. Read-only and full file systems are real tmpfs mounts in a forked child
where root may mount, else simulated (see pathfaults); permission denied runs the child as
user ``nobody`` when pytest runs as root.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pathfaults import (
    CASE_BY_NAME,
    Env,
    make_run,
    mounts_allowed,
    open_tree,
    run_in_process,
    run_main,
)

# One case per kind of mistake (the reliability suite tries every command with each).
ONE_PER_KIND = [
    "evaluate CHECKPOINT missing",
    "train --out a file",
    "train --resume a checkpoint file",
    "report -o a folder",
    "report -o a FIFO",
    "train --out a broken link",
    "evaluate: run/evaluation links out of the run",
    "data --out in a folder we may not write",
    "data --data-dir a folder we may not read",
    "report -o on a read-only file system",
    "data --out on a full disk",
    "train --out a folder of the user's",
]


@pytest.fixture(scope="module")
def finished_run(sample_run) -> Path:
    return sample_run("seed-baseline")


@pytest.fixture
def root():
    with open_tree() as tree:
        yield tree


def assert_refused(outcome, shown: str, phrase: str) -> None:
    """Exit 2, exactly one error line naming ``shown`` and saying ``phrase``, no traceback,
    and nothing under the tree created, removed or changed."""
    lines = outcome.error_lines()
    assert outcome.code == 2, outcome.err[-3000:]
    assert len(lines) == 1, outcome.err[-3000:]
    assert lines[0].startswith("cifarlab: error: "), lines
    assert outcome.changed() == [], outcome.changed()
    assert shown in lines[0] and phrase in lines[0].lower(), lines[0]


@pytest.mark.parametrize("name", ONE_PER_KIND, ids=lambda n: CASE_BY_NAME[n].kind)
def test_a_path_mistake_is_one_line_and_writes_nothing(name, root, finished_run, capsys):
    case = CASE_BY_NAME[name]
    make_run(root, finished_run)
    argv, shown = case.make(root, root / "run")
    if case.env is None:
        outcome = run_in_process(argv, root, capsys)
    else:
        outcome = run_main(argv, root, case.env(root))
    assert_refused(outcome, shown, case.phrase)


def test_a_disk_that_fills_while_figures_are_written_leaves_no_partial_figure(root, tmp_path):
    """The check passes (100 KiB free), the disk fills at the third figure: one line naming
    that figure, the two before it complete, no empty, partial or temp file."""
    if not mounts_allowed():
        pytest.skip("needs a tmpfs mount (root, mount namespaces): a late fill is not simulated")
    from cifarlab.cli.main import main

    assert main(["data", "--data-dir", "sample", "--out", str(tmp_path / "ref")]) == 0
    complete = {p.name: p.stat().st_size for p in (tmp_path / "ref").iterdir()}
    (root / "full").mkdir()
    env = Env(mount=root / "full", size="1m", fill_to=100 * 1024)
    outcome = run_main(["data", "--data-dir", "sample", "--out", "full/figs"], root, env)
    lines = outcome.error_lines()
    assert outcome.code == 2 and len(lines) == 1, outcome.err[-3000:]
    assert lines[0].startswith("cifarlab: error: full/figs/") and "could not write" in lines[0]
    written = {
        Path(k).name: size
        for k, (_, size, *_) in outcome.after.items()
        if k.startswith("full/figs/")
    }
    assert written, "the check should have let the first figures through"
    assert all(complete.get(n) == size for n, size in written.items()), (written, complete)
    # Only the figure folder is new ("full" itself changes size: it gained an entry).
    assert [k for k in outcome.changed() if k != "full" and not k.startswith("full/figs")] == []


# --------------------------------------------------------------------------- the rules


def test_a_link_the_user_names_is_followed(root, capsys):
    """--out runs -> elsewhere is a deliberate setup (scratch disks): not refused."""
    from cifarlab import paths

    (root / "scratch").mkdir()
    (root / "runs").symlink_to(root / "scratch")
    assert paths.output_dir(root / "runs" / "a", "--out") == root / "runs" / "a"
    assert paths.output_dir(root / "runs", "--out", within=root) == root / "runs"


def test_a_folder_left_by_a_run_killed_before_its_first_checkpoint_is_reused(root):
    from cifarlab.cli.common import check_run_out

    (root / "run").mkdir()
    for name in ("recipe.toml", ".lock", ".history.json.tmp-123"):
        (root / "run" / name).write_text("")
    assert check_run_out(root / "run") == root / "run"
    assert check_run_out(root / "new" / "run") == root / "new" / "run"  # created later


def test_output_dir_creates_the_folder_with_its_parents(root):
    from cifarlab import paths

    made = paths.output_dir(root / "a" / "b", "--out", create=True)
    assert made.is_dir()


@pytest.mark.parametrize(
    "code, phrase",
    [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission")],
)
def test_making_the_folder_turns_a_late_os_error_into_one_line(root, monkeypatch, code, phrase):
    """The disk fills (or turns read-only) between the check and the mkdir: simulated by
    making os.mkdir fail, since no real file system changes at that exact moment."""
    from cifarlab import paths
    from cifarlab.errors import PathError

    def mkdir(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(PathError) as err:
        paths.output_dir(root / "a" / "b", "--out", create=True)
    message = str(err.value)
    assert str(root / "a" / "b") in message and phrase in message and "\n" not in message
