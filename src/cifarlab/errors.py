"""cifarlab's own error types.

Every error a user can cause (bad data, a bad recipe value, a damaged checkpoint)
is raised as a subclass of :class:`CifarlabError` with a one-line message that
names the file or field and says what to do. The CLI prints that line and exits
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CifarlabError(Exception):
    """A user-facing error: the message is one line, naming the file or field."""


class DataError(CifarlabError):
    """A dataset could not be found, downloaded or read."""


class RecipeError(CifarlabError):
    """A recipe (or a --set override) has an unknown key or a bad value."""


class CheckpointError(CifarlabError):
    """A checkpoint is missing, damaged, or carries objects we refuse to load."""


class TrainingError(CifarlabError):
    """Training cannot go on (non-finite loss, a locked run directory, ...)."""


class OutputError(CifarlabError):
    """An output file or folder could not be written (full disk, read-only, permissions)."""


class PathError(CifarlabError):
    """A path given by the user is missing, of the wrong kind, or cannot be read or written."""


def warn(message: str) -> None:
    """Print one ``cifarlab: warning: ...`` line on stderr (the one place warnings are shown).

    The message is flattened to one line. The CLI also routes Python's ``warnings.warn``
    (ours and third-party) here while a command runs (cifarlab.cli.main)."""
    import sys

    line = " ".join(str(message).split())
    print(f"cifarlab: warning: {line}", file=sys.stderr, flush=True)
