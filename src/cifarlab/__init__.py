"""cifarlab: a workbench for image classification on CIFAR-10.

The Python API mirrors the CLI:

    >>> from cifarlab import load_cifar10, create_model, train, evaluate
    >>> data = load_cifar10("sample")
    >>> result = train("seed-baseline", data=data, out_dir="runs/demo", overrides={"train.epochs": 1})
    >>> metrics = evaluate("runs/demo/checkpoint.pt", data=data)

``cifarlab.train`` and ``cifarlab.evaluate`` are always these functions, whatever was imported
before; the subpackage and module of the same names are reached by importing from them
(``from cifarlab.train import loop``, ``from cifarlab.evaluate import evaluate_model``).

Nothing is imported eagerly (importing ``cifarlab`` does no I/O and does not
import torch), so ``cifarlab --help`` stays fast.
"""

from __future__ import annotations

import sys
import types

from cifarlab.version import __version__

__all__ = ["__version__", "load_cifar10", "create_model", "list_models", "train", "evaluate"]

# Public functions named like a submodule: the function, and the module that defines it.
_SHADOWING = {"train": "cifarlab.train.loop", "evaluate": "cifarlab.evaluate"}


class _Package(types.ModuleType):
    """This package's module object. Importing a submodule makes the import system bind it on
    the package under its own name (``setattr(cifarlab, "train", <cifarlab.train>)``), which
    would replace the public function of that name, so ``from cifarlab import train`` would
    give a module or a function depending on what was imported first. Those bindings are left
    out here; the submodules stay in sys.modules, where every ``import`` and ``from`` finds them.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWING and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    # Lazy re-exports: keep `import cifarlab` cheap and free of side effects.
    if name == "load_cifar10":
        from cifarlab.data import load_cifar10

        return load_cifar10
    if name in ("create_model", "list_models"):
        from cifarlab import models

        return getattr(models, name)
    if name in _SHADOWING:
        import importlib

        return getattr(importlib.import_module(_SHADOWING[name]), name)
    raise AttributeError(f"module 'cifarlab' has no attribute {name!r}")
