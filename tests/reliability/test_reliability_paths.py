"""User path mistakes: every command meets each kind of bad path a new user gives.

Kinds (the cases are in tests/pathfaults.py): missing; a file where a folder is needed and
the reverse; a FIFO, socket or device; a broken symbolic link; a link inside a run that
leads out of it; permission denied (as user ``nobody`` when run as root); a read-only and
a full file system (tmpfs mounts in a private mount namespace, or simulated where mounting
is not allowed: such a case is counted as simulated in the ledger, apart from real ones);
an output folder holding the user's own files; and a disk that fills while `cifarlab data`
writes its figures.

Handled: exit 2 with exactly one `cifarlab: error:` line naming the path, no traceback.
Data lost: anything under the case's tree created, removed or changed (mode, size, mtime,
SHA-256, listed in the child, which alone sees its tmpfs) by a refused command (a file
written outside its target, a FIFO or link replaced), or an empty, partial or temp figure
left by the late fill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pathfaults import CASES, IS_ROOT, Env, make_run, mounts_allowed, open_tree, run_main

CATEGORY = "user_paths"
CHILD_SNAPSHOT = "snapshot of the case's tree in the child (mode, size, mtime, SHA-256)"


@pytest.fixture(scope="module")
def finished_run(sample_run) -> Path:
    return sample_run("seed-baseline")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_user_path_mistake_is_one_line(case, finished_run, ledger):
    if case.needs_root and not IS_ROOT:
        ledger.not_run(CATEGORY, case.name, "making a device node needs root")
        pytest.skip("making a device node needs root")
    with open_tree() as root:
        make_run(root, finished_run)
        argv, shown = case.make(root, root / "run")
        env = case.env(root) if case.env is not None else None
        simulated = env is not None and env.mount is not None and not mounts_allowed()
        with ledger.case(CATEGORY, case.name) as rec:
            rec.simulated = simulated
            outcome = run_main(argv, root, env)
            lines = outcome.error_lines()
            assert outcome.before, "the child listed no tree: loss could not be measured"
            rec.check(bool(outcome.changed()), CHILD_SNAPSHOT)
            rec.note = ("(simulated) " if simulated else "") + (
                lines[0][len("cifarlab: error: ") :][:150] if lines else ""
            )
            assert "Traceback" not in outcome.err, outcome.err[-3000:]
            assert outcome.code == 2 and len(lines) == 1, outcome.err[-3000:]
            assert lines[0].startswith("cifarlab: error: "), lines
            assert shown in lines[0] and case.phrase in lines[0].lower(), lines[0]
            assert not rec.lost, f"written, removed or changed: {outcome.changed()}"


def test_a_disk_that_fills_during_the_figures_leaves_no_partial_figure(ledger, tmp_path):
    name = "data --out: the disk fills mid-way"
    if not mounts_allowed():
        reason = "needs a tmpfs mount (root, mount namespaces): a late fill is not simulated"
        ledger.not_run(CATEGORY, name, reason)
        pytest.skip(reason)
    from cifarlab.cli.main import main

    assert main(["data", "--data-dir", "sample", "--out", str(tmp_path / "ref")]) == 0
    complete = {p.name: p.stat().st_size for p in (tmp_path / "ref").iterdir()}
    with open_tree() as root, ledger.case(CATEGORY, name) as rec:
        (root / "full").mkdir()
        env = Env(mount=root / "full", size="1m", fill_to=100 * 1024)
        outcome = run_main(["data", "--data-dir", "sample", "--out", "full/figs"], root, env)
        lines = outcome.error_lines()
        written = {
            Path(k).name: size
            for k, (_, size, *_) in outcome.after.items()
            if k.startswith("full/figs/")
        }
        outside = [k for k in outcome.changed() if k != "full" and not k.startswith("full/figs")]
        rec.check(bool(outside), CHILD_SNAPSHOT + ", outside full/figs")
        partial = any(complete.get(n) != size for n, size in written.items())
        rec.check(partial, "each figure left complete (its size as written on a roomy disk)")
        rec.note = lines[0][len("cifarlab: error: ") :][:150] if lines else ""
        assert "Traceback" not in outcome.err, outcome.err[-3000:]
        assert outcome.code == 2 and len(lines) == 1, outcome.err[-3000:]
        assert lines[0].startswith("cifarlab: error: full/figs/"), lines
        assert not rec.lost, (written, complete, outside)
