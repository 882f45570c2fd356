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
