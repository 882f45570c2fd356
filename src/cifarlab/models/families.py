"""Every model family module, imported once so its models register themselves."""

from cifarlab.models import seednet  # noqa: F401
