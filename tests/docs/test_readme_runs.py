"""README.md runs as written: every Python block in a fresh interpreter, and every `cifarlab`
line of its shell blocks, in order, in one folder (they chain: train writes runs/si,
evaluate reads it), on the bundled sample.

What the test adds, and nothing else: `--data-dir sample` to each command that reads data,
and a tiny training (`--set train.epochs=0.25 --set train.eval_points=1`) to each command
that trains, except a quick check (`train --quick-check`), which runs as written: it is a
few steps already, and it checks the recipe's full length as the user gives it. The two set-up commands (scripts/quickstart.sh, scripts/test.sh) are CI's own
and are not run here; tests/docs/test_quickstart_script.py runs the quick start's job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from readme_blocks import README, SHELL, fenced_blocks, shell_lines

from cifarlab.cli.main import main
from cifarlab.data import load_cifar10

SETUP = [["bash", "scripts/quickstart.sh"], ["bash", "scripts/test.sh"]]
TRAINS = {"train", "seeds", "ablate", "tune", "bench"}
READS_DATA = {"data", "train", "evaluate", "seeds", "ablate", "tune", "bench", "report"}
TINY = ["--set", "train.epochs=0.25", "--set", "train.eval_points=1"]
# A quarter epoch of a batch-500 recipe on CIFAR-100's 1,000-image sample is no step at all:
# such a recipe trains one epoch (two steps) instead.
TINY_LARGE_BATCH = ["--set", "train.epochs=1", "--set", "train.eval_points=1"]
PICTURES = "photos"  # the folder README's predict line names; made here from sample images

BLOCKS = fenced_blocks(README.read_text())


def for_the_test(argv: list[str]) -> list[str]:
    """A README command as the test runs it: on the sample, training only a few steps."""
    cmd, args = argv[1], argv[2:]
    if "--data-dir" in args:  # whatever README names, the test has the sample only
        i = args.index("--data-dir")
        args = args[:i] + args[i + 2 :]
    if cmd in READS_DATA:
        args += ["--data-dir", "sample"]
    trains = cmd in TRAINS and "--resume" not in args and (cmd != "bench" or "--recipe" in args)
    if trains and "--quick-check" not in args:
        args += _tiny(args)
    return [cmd, *args]


def _tiny(args: list[str]) -> list[str]:
    """The tiny training for a command: a quarter epoch, or one epoch for a batch of 500 or more."""
    from cifarlab.recipe import load_recipe

    if "--recipe" in args and load_recipe(args[args.index("--recipe") + 1]).train.batch_size >= 500:
        return TINY_LARGE_BATCH
    return TINY


def _commands() -> list[list[str]]:
    commands = []
    for lang, body in BLOCKS:
        if lang not in SHELL:
            continue
        for words in shell_lines(body):
            if words in SETUP:
                continue
            assert words[0] == "cifarlab", f"README runs {words}: the test runs only cifarlab"
            commands.append(words)
    return commands


def _pictures(folder: Path) -> None:
    data = load_cifar10("sample")
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.ascontiguousarray(data.test_images[i])).save(folder / f"{i}.png")


def test_readme_shows_both_set_up_commands():
    shell = [words for lang, body in BLOCKS if lang in SHELL for words in shell_lines(body)]
    assert all(cmd in shell for cmd in SETUP)


def test_readme_runs_a_quick_check_before_its_first_real_training():
    trainings = [c for c in _commands() if c[1] == "train" and "--resume" not in c]
    assert "--quick-check" in trainings[0], trainings[0]
    assert any("--quick-check" not in c for c in trainings[1:])


def test_a_quick_check_runs_as_written_but_on_the_sample():
    argv = ["cifarlab", "train", "--recipe", "seed-improved", "--quick-check"]
    assert for_the_test(argv) == [*argv[1:], "--data-dir", "sample"]
    real = ["cifarlab", "train", "--recipe", "seed-improved", "--out", "runs/si"]
    assert for_the_test(real) == [*real[1:], "--data-dir", "sample", *TINY]


@pytest.mark.slow
def test_every_cifarlab_line_of_readme_runs_in_order(tmp_path, monkeypatch, capsys):
    commands = _commands()
    assert len(commands) >= 8
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CIFARLAB_DATA", raising=False)
    if any(PICTURES in " ".join(c) for c in commands if c[1] == "predict"):
        _pictures(tmp_path / PICTURES)
    for words in commands:
        argv = for_the_test(words)
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse refusing the line
            rc = exc.code
        out, err = capsys.readouterr()
        assert rc == 0, f"`{' '.join(words)}` (run as {argv}) exited {rc}:\n{err[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "code", [body for lang, body in BLOCKS if lang == "python"], ids=lambda c: c.split("\n")[0]
)
def test_every_python_block_of_readme_runs(code, tmp_path):
    """In a fresh interpreter, as a user's script: what it imports first is what README shows."""
    env = {k: v for k, v in os.environ.items() if k != "CIFARLAB_DATA"}
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
