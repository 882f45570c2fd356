"""A temperature.json read back is input: outside [T_MIN, T_MAX], or not a finite number, it
is one line naming the file and field, exit 2, in predict, evaluate and export alike; and
JSON that cifarlab writes or prints never holds NaN."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from cifarlab.atomic import write_json
from cifarlab.cli.main import main
from cifarlab.errors import CifarlabError


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, sample_run) -> Path:
    run = tmp_path_factory.mktemp("stored-temperature") / "run"
    shutil.copytree(sample_run("seed-baseline"), run, ignore=shutil.ignore_patterns(".lock"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["evaluate", str(run), "--calibrate", "--device", "cpu"]) == 0
    return run


@pytest.fixture
def picture(tmp_path, sample_data) -> Path:
    from PIL import Image

    path = tmp_path / "a.png"
    Image.fromarray(sample_data.test_images[0]).save(path)
    return path


def _with_temperature(run: Path, dst: Path, value) -> Path:
    copy = shutil.copytree(run, dst)
    record = json.loads((copy / "temperature.json").read_text())
    record["temperature"] = value
    (copy / "temperature.json").write_text(json.dumps(record))
    return copy


def _strict(text: str):
    """json.loads that refuses NaN and infinity, as every other JSON reader does."""

    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", [1e-300, 1e308, 0.001, 1000.0, float("nan")])
def test_a_temperature_outside_its_range_is_refused_by_every_command(
    calibrated, tmp_path, picture, value, capsys
):
    run = _with_temperature(calibrated, tmp_path / "run", value)
    commands = {
        "predict": ["predict", str(run), str(picture), "--json"],
        "evaluate": ["evaluate", str(run), "--device", "cpu", "--json"],
        "export": ["export", str(run), "-o", str(tmp_path / "exported")],
    }
    for name, args in commands.items():
        code = main(args)
        captured = capsys.readouterr()
        if captured.out.strip():  # whatever was printed is valid JSON (never NaN)
            _strict(captured.out)
        assert code == 2, name
        (line,) = captured.err.strip().splitlines()
        assert line.startswith("cifarlab: error: "), name
        assert "temperature.json: temperature is " in line and "[0.01, 100]" in line, name
    assert not (tmp_path / "exported").exists()


def test_a_temperature_at_either_end_of_the_range_keeps_the_predicted_class(
    calibrated, tmp_path, picture, capsys
):
    classes = []
    for value in (None, 0.01, 100.0):
        run = (
            calibrated
            if value is None
            else _with_temperature(calibrated, tmp_path / str(value), value)
        )
        assert main(["predict", str(run), str(picture), "--json"]) == 0
        top = _strict(capsys.readouterr().out)["predictions"][0]["top"][0]
        classes.append(top["class"])
    assert len(set(classes)) == 1


def test_json_is_never_written_with_nan(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(CifarlabError, match="non-finite number"):
        write_json(path, {"accuracy": float("nan")})
    assert not path.exists()
