"""The documented Python API: `from cifarlab import train, evaluate` gives the functions
whatever was imported before (the subpackage cifarlab.train and the module
cifarlab.evaluate share those names). Each import order runs in a fresh interpreter, as a
user's script would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHECK = """
import sys, types
from cifarlab import train, evaluate, load_cifar10, create_model, list_models
from cifarlab.train.loop import train as loop_train
from cifarlab.evaluate import evaluate as module_evaluate
assert train is loop_train, train
assert evaluate is module_evaluate, evaluate
import cifarlab
assert cifarlab.train is loop_train and cifarlab.evaluate is module_evaluate
# The subpackage and the module are still reached by importing from them.
from cifarlab.train import loop, distributed
assert loop is sys.modules["cifarlab.train.loop"] and isinstance(distributed, types.ModuleType)
assert hasattr(sys.modules["cifarlab.evaluate"], "evaluate_model")
"""

IMPORTED_FIRST = {
    "nothing": "",
    "the training loop and the evaluate module": "import cifarlab.train.loop, cifarlab.evaluate",
    "every layer, as the CLI does": (
        "import cifarlab.cli.main, cifarlab.report.sections, cifarlab.tune.search\n"
        "cifarlab.cli.main.build_parser()"
    ),
}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("first", list(IMPORTED_FIRST), ids=list(IMPORTED_FIRST))
def test_train_and_evaluate_are_the_functions_whatever_was_imported_first(first):
    res = _run(IMPORTED_FIRST[first] + "\n" + CHECK)
    assert res.returncode == 0, res.stderr


def test_a_user_may_still_replace_the_public_functions(monkeypatch):
    """A test double set by name (monkeypatch, mock.patch.object) takes effect and is undone."""
    import cifarlab
    from cifarlab.train.loop import train as real

    def fake(*args, **kwargs):
        return {"fake": True}

    monkeypatch.setattr(cifarlab, "train", fake)
    assert cifarlab.train is fake
    monkeypatch.undo()
    assert cifarlab.train is real
