"""Every model family module, imported once so its models register themselves."""

from cifarlab.models import fastnet, resnet, seednet  # noqa: F401
