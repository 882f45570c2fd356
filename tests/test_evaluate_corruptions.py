"""`cifarlab evaluate --corruptions`: the selection, the numbers, and what is written."""

from __future__ import annotations

import json
import shutil

import pytest

from cifarlab import robustness
from cifarlab.cli.main import main
from cifarlab.data.cifar10c import NAMES
from cifarlab.evaluate import evaluate
from cifarlab.rundir import CORRUPTIONS_FIGURE, CORRUPTIONS_JSON, EVALUATION, EVALUATION_DIR


@pytest.fixture
def run(sample_run, tmp_path):
    """A copy of a real tiny run on the bundled sample, ours to write evaluations into."""
    dst = tmp_path / "run"
    shutil.copytree(sample_run("seed-baseline"), dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --------------------------------------------------------------------------- the selection


def test_corruptions_all_or_a_list_in_the_order_given():
    assert robustness.parse_corruptions("all") == list(NAMES)
    assert robustness.parse_corruptions(" fog, gaussian_noise ,fog") == ["fog", "gaussian_noise"]


@pytest.mark.parametrize("text", ["rain", "fog,,snow", "", "Fog"])
def test_an_unknown_corruption_names_the_flag_and_every_choice(text):
    with pytest.raises(robustness.RobustnessError) as err:
        robustness.parse_corruptions(text)
    line = str(err.value)
    assert line.startswith("--corruptions") and "\n" not in line
    assert all(name in line for name in NAMES)


@pytest.mark.parametrize(
    "text, want",
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1,3", [1, 3]),
        ("2-4", [2, 3, 4]),
        ("5", [5]),
        ("3,1-2", [1, 2, 3]),
    ],
)
def test_severities_as_a_range_or_a_list(text, want):
    assert robustness.parse_severities(text) == want


@pytest.mark.parametrize("text", ["0-5", "6", "1-6", "5-1", "a", "", "1,", "1-2-3", "-1"])
def test_a_bad_severity_names_the_flag_and_the_allowed_values(text):
    with pytest.raises(robustness.RobustnessError, match=r"^--severities .*1 to 5"):
        robustness.parse_severities(text)


def test_summary_means_per_corruption_severity_and_overall():
    table = {"fog": {1: 0.8, 5: 0.4}, "snow": {1: 0.6, 5: 0.2}}
    s = robustness.summarize(table, clean_accuracy=0.9)
    assert s["mean_by_corruption"] == pytest.approx({"fog": 0.6, "snow": 0.4})
    assert s["mean_by_severity"] == pytest.approx({"1": 0.7, "5": 0.3})
    assert s["mean_by_category"] == pytest.approx({"weather": 0.5})
    assert s["mean_accuracy"] == pytest.approx(0.5)
    assert s["relative_accuracy"] == pytest.approx(0.5 / 0.9)


# --------------------------------------------------------------------------- the command


def test_evaluate_writes_corruptions_json_and_chart_beside_evaluation(run, capsys):
    rc = main(
        ["evaluate", str(run), "--corruptions", "gaussian_noise,contrast", "--severities", "1,5"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    folder = run / EVALUATION_DIR / "none"
    result = json.loads((folder / CORRUPTIONS_JSON).read_text())
    assert (folder / CORRUPTIONS_FIGURE).read_bytes().startswith(b"\x89PNG")
    assert (folder / EVALUATION).is_file()
    assert result["corruptions"] == ["gaussian_noise", "contrast"]
    assert result["severities"] == [1, 5]
    assert set(result["accuracy"]["contrast"]) == {"1", "5"}
    cells = [a for row in result["accuracy"].values() for a in row.values()]
    assert all(0 <= a <= 1 for a in cells)
    assert result["mean_accuracy"] == pytest.approx(sum(cells) / 4)
    clean = json.loads((folder / EVALUATION).read_text())["accuracy"]
    assert result["clean_accuracy"] == pytest.approx(clean)  # the same model, the same pass
    assert result["count"] == 500 and result["seed"] == robustness.DEFAULT_SEED
    assert "gaussian_noise" in out and "mean corruption accuracy" in out


def test_a_bad_name_is_one_line_exit_2_and_nothing_written(run, capsys):
    before = files_under(run)
    rc = main(["evaluate", str(run), "--corruptions", "gaussian_noise,rain"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "--corruptions" in err and "'rain'" in err
    assert "jpeg_compression" in err  # the allowed values are listed
    assert files_under(run) == before


def test_bad_severities_or_severities_alone_are_refused_before_anything(run, capsys):
    before = files_under(run)
    assert main(["evaluate", str(run), "--corruptions", "fog", "--severities", "0-3"]) == 2
    assert "--severities" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--severities", "1-5"]) == 2
    assert "needs --corruptions" in capsys.readouterr().err
    assert files_under(run) == before


def test_json_output_is_one_document_with_the_corruptions(run, capsys):
    rc = main(["evaluate", str(run), "--corruptions", "brightness", "--severities", "2", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["corruptions"]["accuracy"]["brightness"].keys() == {"2"}
    assert "accuracy" in doc  # the clean evaluation around it


def test_with_tta_the_corruptions_go_to_that_tta_folder(run, capsys):
    rc = main(
        ["evaluate", str(run), "--tta", "flip", "--corruptions", "pixelate", "--severities", "3"]
    )
    assert rc == 0
    result = json.loads((run / EVALUATION_DIR / "flip" / CORRUPTIONS_JSON).read_text())
    assert result["tta"] == "flip"
    assert not (run / EVALUATION_DIR / "none").exists()


def test_the_function_agrees_with_evaluate_and_is_deterministic(run, sample_data):
    one = robustness.evaluate_corruptions(
        run, corruptions=["jpeg_compression"], severities=[1], data=sample_data
    )
    two = robustness.evaluate_corruptions(
        run, corruptions=["jpeg_compression"], severities=[1], data=sample_data
    )
    assert one["accuracy"] == two["accuracy"]
    assert one["clean_accuracy"] == pytest.approx(evaluate(run, data=sample_data)["accuracy"])
    with pytest.raises(robustness.RobustnessError):
        robustness.evaluate_corruptions(run, corruptions=["rain"], data=sample_data)
