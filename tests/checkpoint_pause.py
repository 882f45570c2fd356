"""Hold a cifarlab process at one moment of one checkpoint write, so a test can SIGKILL it
exactly there; nothing in cifarlab itself knows of it.

A pause is "PHASE@STEP": at PHASE of the write of the step-STEP checkpoint (cifarlab.rundir's
save_checkpoint) the process says ``cifarlab-test: paused at checkpoint PHASE step STEP`` on
stderr and sleeps. The phases, each seen from the calls the write makes:

- ``write``: torch.save has written the temp checkpoint ``.checkpoint.pt.tmp-PID``, not yet
  flushed or fsynced;
- ``rotate``: the temp checkpoint is complete, checkpoint.prev.pt not yet updated (the
  hard link of checkpoint.pt; so only when there is a checkpoint.pt to keep);
- ``replace``: checkpoint.prev.pt updated, the temp checkpoint not yet renamed over
  checkpoint.pt;
- ``summary``: checkpoint.pt renamed into place, checkpoint.json not yet written.

In this process: :func:`install`. In a process a test starts (and every process that one
starts, a search's spawned workers included): the environment of :func:`environment`, which
puts ``checkpoint_pause_site/`` on PYTHONPATH; its ``sitecustomize`` installs the pause at
interpreter start.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ENV = "CIFARLAB_TEST_CHECKPOINT_PAUSE"
SITE = Path(__file__).resolve().parent / "checkpoint_pause_site"
PHASES = ("write", "rotate", "replace", "summary")

_CHECKPOINT_TEMP = ".checkpoint.pt.tmp-"  # cifarlab.atomic's temp file of checkpoint.pt
_PREVIOUS_TEMP = ".checkpoint.prev.pt.tmp-"  # the hard link that becomes checkpoint.prev.pt


def environment(pause: str) -> dict[str, str]:
    """The variables that make a new Python process (and its children) pause at ``pause``."""
    path = os.environ.get("PYTHONPATH")
    return {ENV: pause, "PYTHONPATH": str(SITE) + (os.pathsep + path if path else "")}


def install(pause: str) -> None:
    """Make this process pause at ``pause`` ("PHASE@STEP")."""
    import torch

    phase, _, step = pause.partition("@")
    if phase not in PHASES or not step.isdigit():
        raise ValueError(f"{pause!r}: expected PHASE@STEP, PHASE one of {', '.join(PHASES)}")
    want = int(step)
    writing: list[int] = []  # the step of the checkpoint being written
    real_save, real_link, real_replace = torch.save, os.link, os.replace

    def hold(at: str) -> None:
        if at == phase and writing and writing[-1] == want:
            print(
                f"cifarlab-test: paused at checkpoint {at} step {want}", file=sys.stderr, flush=True
            )
            time.sleep(120)

    def save(obj, f, *args, **kwargs):
        name = Path(getattr(f, "name", "") or "").name
        if name.startswith(_CHECKPOINT_TEMP) and isinstance(obj, dict):
            writing[:] = [obj.get("step")]
        result = real_save(obj, f, *args, **kwargs)
        if name.startswith(_CHECKPOINT_TEMP):
            hold("write")
        return result

    def link(src, dst, *args, **kwargs):
        if Path(dst).name.startswith(_PREVIOUS_TEMP):
            hold("rotate")
        return real_link(src, dst, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        ours = Path(src).name.startswith(_CHECKPOINT_TEMP)
        if ours:
            hold("replace")
        result = real_replace(src, dst, *args, **kwargs)
        if ours:
            hold("summary")
        return result

    torch.save, os.link, os.replace = save, link, replace
