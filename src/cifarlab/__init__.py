"""cifarlab: a workbench for image classification on CIFAR-10.

The Python API mirrors the CLI:

    >>> from cifarlab import load_cifar10, create_model, train, evaluate
    >>> data = load_cifar10("sample")
    >>> result = train("seed-baseline", data=data, out_dir="runs/demo", overrides={"train.epochs": 1})
    >>> metrics = evaluate("runs/demo/checkpoint.pt", data=data)

``cifarlab.train`` is the training subpackage and ``cifarlab.evaluate`` the evaluation module;
each is callable (``train(...)`` is ``cifarlab.train.loop.train``, ``evaluate(...)`` is
``cifarlab.evaluate.evaluate``), so both names work whatever was imported before, and every
import idiom still reaches the modules (cifarlab.callable_module says why).

Nothing is imported eagerly (importing ``cifarlab`` does no I/O and does not
import torch), so ``cifarlab --help`` stays fast.
"""

from __future__ import annotations

import importlib

from cifarlab.version import __version__

__all__ = ["__version__", "load_cifar10", "create_model", "list_models", "train", "evaluate"]


def __getattr__(name: str):
    # Lazy re-exports: keep `import cifarlab` cheap and free of side effects.
    if name == "load_cifar10":
        from cifarlab.data import load_cifar10

        return load_cifar10
    if name in ("create_model", "list_models"):
        from cifarlab import models

        return getattr(models, name)
    if name in ("train", "evaluate"):
        # The callable subpackage / module (the import binds it here too).
        return importlib.import_module(f"cifarlab.{name}")
    raise AttributeError(f"module 'cifarlab' has no attribute {name!r}")
