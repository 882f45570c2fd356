"""Modules that can be called: ``cifarlab.train(...)`` and ``cifarlab.evaluate(...)``.

The public API names two functions after the subpackage and the module that define them
(``cifarlab.train`` is the package holding the loop, ``cifarlab.evaluate`` the module holding
``evaluate``). Python binds a submodule on its parent under its own name whenever it is
imported, so a plain re-export would make ``from cifarlab import train`` a function or a
module depending on what was imported first. Instead the module itself is made callable: it
stays the module for every import idiom (``import cifarlab.train.loop as loop``,
``from cifarlab.train import optim``), and calling it calls the function.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(module_name: str, target: str) -> None:
    """Make ``sys.modules[module_name]`` callable: a call goes to ``target``, written
    "module:function" and imported at the first call (so the package stays cheap to import)."""
    target_module, function = target.split(":")

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(target_module), function)(*args, **kwargs)

    CallableModule.__call__.__doc__ = f"Call {target_module}.{function} (see its docstring)."
    sys.modules[module_name].__class__ = CallableModule
