"""Search spaces: the built-in ones fit their recipes; a bad entry is one line naming the file
and the entry (exit 2 at the command line), before anything trains."""

from __future__ import annotations

import pytest
from tunehelpers import cli

from cifarlab.recipe import load_recipe
from cifarlab.tune import TuneError
from cifarlab.tune.space import builtin_spaces, load_space, start_values


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("seed-improved", {}), ("fast94", {"data.val_fraction": 0.1})],
)
def test_builtin_spaces_fit_their_recipes_and_hold_the_recipes_own_values(name, overrides):
    assert name in builtin_spaces()
    recipe = load_recipe(name, overrides)
    space = load_space(name, recipe)
    assert space.description and len(space.params) >= 4
    # Trial 0 trains the recipe itself: every field's own value lies inside its range.
    start = start_values(space, recipe)
    assert start.keys() == set(space.fields())
    if name == "seed-improved":
        assert set(space.fields()) >= {
            "optim.lr",
            "optim.weight_decay",
            "model.options.dropout",
            "train.batch_size",
        }
        assert start["model.options.dropout"] == 0.5  # seednet-improved's default


def test_both_toml_forms_of_an_entry_read_the_same(tmp_path):
    quoted, nested = tmp_path / "quoted.toml", tmp_path / "nested.toml"
    quoted.write_text('"optim.lr" = { log_uniform = [1e-4, 1e-2] }\n')
    nested.write_text("[optim]\nlr = { log_uniform = [1e-4, 1e-2] }\n")
    recipe = load_recipe("seed-baseline")
    a, b = load_space(quoted, recipe), load_space(nested, recipe)
    assert a.params == b.params and a.params[0].kind == "log_uniform"


BAD = [
    ('"optim.lrr" = { log_uniform = [1e-4, 1e-2] }', "unknown field: the recipe has no optim.lrr"),
    ('"model.options.dropot" = { uniform = [0.0, 0.5] }', "model 'seednet' has no option 'dropot'"),
    ('"optim.lr" = { loguniform = [1e-4, 1e-2] }', "unknown distribution 'loguniform'"),
    ('"optim.lr" = { log_uniform = [0, 1e-2] }', "log_uniform needs 0 < low"),
    ('"optim.lr" = { uniform = [1e-2, 1e-4] }', "uniform needs low < high"),
    ('"train.epochs" = { int = [1.5, 3] }', "int needs integer bounds"),
    ('"train.batch_size" = { choice = [32] }', "choice needs a list of at least two values"),
    ('"train.batch_size" = { uniform = [16, 64] }', "takes integers and uniform draws real"),
    ('"optim.momentum" = { uniform = [0.5, 1.5] }', "1.5 is not a valid value (optim.momentum"),
    ('"model.options.dropout" = { uniform = [0.0, 1.0] }', "1 is not a valid value"),
    ('"optim.lr" = 1e-3', "expected one distribution"),
    ('"seed" = { int = [0, 9] }', "seed cannot be searched"),
    ('"data.val_fraction" = { uniform = [0.1, 0.3] }', "data.val_fraction cannot be searched"),
    ('"optim" = { uniform = [0.1, 0.3] }', "optim is a section"),
    ('description = "nothing to search"', "no entries"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_entry_is_one_line_naming_the_file_and_the_entry(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text + "\n")
    with pytest.raises(TuneError) as err:
        load_space(path, load_recipe("seed-baseline"))
    line = str(err.value)
    assert message in line and "\n" not in line
    assert line.startswith(f"{path}: ")
    if "=" in text and not text.startswith("description"):
        assert f"entry '{text.split('=')[0].strip().strip(chr(34))}'" in line


def test_cli_refuses_a_bad_space_and_bad_options_with_one_line_exit_2(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('"optim.lr" = { log_uniform = [3e-3, 1e-4] }\n')
    out = tmp_path / "tune"
    r = cli("tune", "--recipe", "seed-baseline", "--space", str(path), "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"cifarlab: error: {path}: entry 'optim.lr': log_uniform needs low < high, got "
        f"[0.003, 0.0001]"
    ]
    assert not out.exists()  # refused before anything was written

    r = cli("tune", "--recipe", "fast94", "--out", str(out), "--confirm", "3")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "holds out no validation images" in r.stderr
    assert "--set data.val_fraction=0.1" in r.stderr

    r = cli("tune", "--space", "no-such-space", "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "space 'no-such-space': no such built-in space or file" in r.stderr
