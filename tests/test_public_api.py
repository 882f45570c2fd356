"""The documented Python API: `from cifarlab import train, evaluate` gives names that call the
training and evaluation functions whatever was imported before (the subpackage
cifarlab.train and the module cifarlab.evaluate share those names, and are made callable).
Each import order runs in a fresh interpreter, as a user's script would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHECK = """
import sys, types
from unittest import mock
from cifarlab import train, evaluate, load_cifar10, create_model, list_models
import cifarlab
assert train is sys.modules["cifarlab.train"] and evaluate is sys.modules["cifarlab.evaluate"]
assert cifarlab.train is train and cifarlab.evaluate is evaluate
# Calling them calls the functions, with every argument.
with mock.patch("cifarlab.train.loop.train", return_value="trained") as t:
    assert train("seed-baseline", out_dir="x", overrides={"a": 1}) == "trained"
t.assert_called_once_with("seed-baseline", out_dir="x", overrides={"a": 1})
with mock.patch("cifarlab.evaluate.evaluate", return_value="scored") as e:
    assert evaluate("run/checkpoint.pt", tta="flip") == "scored"
e.assert_called_once_with("run/checkpoint.pt", tta="flip")
# Every import idiom still reaches the modules.
import cifarlab.train.loop as loop
from cifarlab.train import distributed
from cifarlab.evaluate import evaluate_model
assert loop is sys.modules["cifarlab.train.loop"] and isinstance(distributed, types.ModuleType)
assert evaluate_model is sys.modules["cifarlab.evaluate"].evaluate_model
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


def test_a_user_may_still_replace_the_public_names(monkeypatch):
    """A test double set by name (monkeypatch, mock.patch.object) takes effect and is undone."""
    import cifarlab

    real = cifarlab.train

    def fake(*args, **kwargs):
        return {"fake": True}

    monkeypatch.setattr(cifarlab, "train", fake)
    assert cifarlab.train is fake
    monkeypatch.undo()
    assert cifarlab.train is real
