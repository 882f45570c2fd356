"""Calibration through the commands, on real tiny runs of the bundled sample: every evaluation
reports ECE/NLL/Brier, `evaluate --calibrate` fits T on the validation split only and stores
it beside the checkpoint, predict and export use it, and a stale or impossible one is handled.

The commands run in-process (the same main() as `python -m cifarlab`), as the predict and
export tests do: a subprocess per case costs seconds of imports on a busy machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarlab.calibration import fit_temperature
from cifarlab.cli.main import main
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.data.split import split_train_val
from cifarlab.evaluate import evaluate
from cifarlab.inference import predict_logits
from cifarlab.predict import load_trained_model, predict_arrays
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train


def _copy(run: Path, dst: Path) -> Path:
    """A private copy of a shared session run (the commands below write into it)."""
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, sample_run):
    """A copy of the seed-baseline sample run after `cifarlab evaluate RUN --calibrate --json`:
    (run directory, the printed result)."""
    run = _copy(sample_run("seed-baseline"), tmp_path_factory.mktemp("calibrated") / "run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["evaluate", str(run), "--calibrate", "--json", "--device", "cpu"])
    assert code == 0
    return run, json.loads(buf.getvalue())


def test_training_records_test_and_validation_calibration(sample_run):
    m = json.loads((sample_run("seed-baseline") / "metrics.json").read_text())
    assert 0.0 <= m["test_ece"] <= 1.0 and 0.0 <= m["val_ece"] <= 1.0
    assert 0.0 <= m["test_brier"] <= 2.0 and m["val_nll"] > 0
    assert m["test_nll"] == pytest.approx(m["test_loss"])  # NLL is the evaluation loss
    rel = m["test_reliability"]
    assert rel["n_bins"] == 15 and sum(rel["count"]) == m["test_count"]


def test_evaluate_reports_calibration_and_draws_a_reliability_diagram(
    tmp_path, sample_run, sample_data
):
    run = sample_run("seed-baseline")
    out = tmp_path / "ev"
    result = evaluate(run, data=sample_data, device="cpu", out_dir=out)
    stored = json.loads((run / "metrics.json").read_text())
    # The same checkpoint, test set and definitions as the end of training.
    for key in ("ece", "nll", "brier"):
        assert result[key] == pytest.approx(stored[f"test_{key}"], rel=1e-5)
    assert "temperature" not in result and "calibrated" not in result
    assert (out / "reliability.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "evaluation.json").read_text())["ece"] == result["ece"]
    assert not (run / "temperature.json").exists()  # only --calibrate writes one


def test_calibrate_fits_the_temperature_on_the_validation_split_only(calibrated, sample_data):
    run, result = calibrated
    # The training's split: data.val_fraction 0.2, data.split_seed 42 of the 2,000 sample
    # training images; refit here from those logits alone gives the same T.
    _, val_idx = split_train_val(sample_data.train_labels, 0.2, 42)
    trained = load_trained_model(run, calibrated=False)
    logits = predict_logits(
        trained.model,
        to_uint8_tensor(sample_data.train_images[val_idx]),
        torch.tensor(trained.mean),
        torch.tensor(trained.std),
    )
    expected = fit_temperature(logits, torch.from_numpy(sample_data.train_labels[val_idx]))
    t = result["temperature"]
    assert t["value"] == pytest.approx(expected, rel=1e-6)
    assert t["validation_count"] == len(val_idx) == 400 and t["fitted_on"] == "validation"
    # The test set's numbers before and after; a temperature never changes the accuracy.
    assert result["calibrated"]["accuracy"] == result["accuracy"]
    assert result["calibrated"]["ece"] != result["ece"]


def test_calibrate_writes_temperature_json_beside_the_checkpoint(calibrated):
    run, result = calibrated
    record = json.loads((run / "temperature.json").read_text())
    assert record["format"] == "cifarlab-temperature"
    assert record["temperature"] == result["temperature"]["value"]
    assert record["step"] == load_checkpoint(run)["step"] == result["step"]
    assert record["validation_count"] == 400
    assert record["val_fraction"] == 0.2 and record["split_seed"] == 42
    v = record["validation"]
    assert v["nll_after"] <= v["nll_before"]  # fitted there: NLL can only fall
    ev = json.loads((run / "evaluation" / "none" / "evaluation.json").read_text())
    assert ev["temperature"]["value"] == record["temperature"]
    assert (run / "evaluation" / "none" / "reliability.png").is_file()
    assert not list(run.glob(".*.tmp-*"))  # written atomically, no temp file left


def test_calibrate_prints_before_and_after(tmp_path, calibrated, capsys):
    run = _copy(calibrated[0], tmp_path / "run")
    assert main(["evaluate", str(run), "--calibrate", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "calibration: ECE " in out and "NLL " in out and "Brier " in out
    assert "temperature: " in out and str(run / "temperature.json") in out
    assert "after temperature scaling: ECE " in out
    assert f"reliability diagram: {run / 'evaluation' / 'none' / 'reliability.png'}" in out


def test_predict_uses_the_temperature_and_says_so(tmp_path, calibrated, sample_data, capsys):
    from PIL import Image

    run, result = calibrated
    t = result["temperature"]["value"]
    picture = tmp_path / "a.png"
    Image.fromarray(sample_data.test_images[0]).save(picture)
    assert main(["predict", str(run), str(picture), "--json", "-k", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["temperature"] == t and "calibrated: temperature" in out["temperature_note"]
    raw = predict_arrays(load_trained_model(run, calibrated=False), sample_data.test_images[:1])[0]
    expected = torch.softmax(torch.log(torch.from_numpy(raw).double()) / t, 0).numpy()
    got = {p["index"]: p["probability"] for p in out["predictions"][0]["top"]}
    assert [got[i] for i in range(10)] == pytest.approx(expected.tolist(), abs=1e-5)
    assert not np.allclose(expected, raw, atol=1e-3)  # the temperature did change them
    assert main(["predict", str(run), str(picture)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("calibrated: temperature ") and str(run) in lines[0]


def test_a_stale_temperature_is_ignored_with_a_warning(tmp_path, calibrated, sample_data, capsys):
    from PIL import Image

    run = _copy(calibrated[0], tmp_path / "run")
    record = json.loads((run / "temperature.json").read_text())
    record["step"] -= 1  # fitted for an earlier checkpoint (e.g. before a resume)
    (run / "temperature.json").write_text(json.dumps(record))
    picture = tmp_path / "a.png"
    Image.fromarray(sample_data.test_images[0]).save(picture)
    assert main(["predict", str(run), str(picture), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["temperature"] is None
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith("cifarlab: warning: ") and "temperature.json: ignored" in warning
    assert f"step {record['step']}" in warning and "--calibrate" in warning
    # A file that is not a temperature record is an error naming it, not a silent default.
    (run / "temperature.json").write_text('{"temperature": "hot"}')
    assert main(["predict", str(run), str(picture)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "temperature.json: not a valid temperature record" in line


def test_export_applies_the_temperature(tmp_path, calibrated, sample_data, capsys):
    from cifarlab.export import load_safetensors_model, read_metadata

    run, result = calibrated
    t = result["temperature"]["value"]
    out = tmp_path / "exported"
    args = ["export", str(run), "-o", str(out), "--format", "torchscript"]
    assert main([*args, "--format", "safetensors"]) == 0
    assert capsys.readouterr().out.startswith("calibrated: temperature ")
    trained = load_trained_model(run, calibrated=False)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        raw = trained.model(x)
        scripted = torch.jit.load(str(out / "model.torchscript.pt"), map_location="cpu")(x)
        rebuilt = load_safetensors_model(out / "model.safetensors")[0](x)
    assert torch.allclose(scripted, raw / t, atol=1e-5, rtol=0)
    assert torch.allclose(rebuilt, raw / t, atol=1e-6, rtol=0)
    assert torch.equal(scripted.argmax(1), raw.argmax(1))
    for name in ("model.torchscript.pt", "model.safetensors"):
        assert read_metadata(out / name)["temperature"] == t
    assert json.loads((out / "model.json").read_text())["temperature"] == t


def test_calibrate_without_a_validation_split_fails_with_one_line(tmp_path, sample_data, capsys):
    run = tmp_path / "run"
    overrides = {"train.epochs": 0.2, "train.eval_points": 1, "system.threads": 1}
    train(
        "seed-baseline",
        out_dir=run,
        data=sample_data,
        overrides={**overrides, "data.val_fraction": 0.0},
        progress=False,
        log=lambda s: None,
    )
    assert json.loads((run / "metrics.json").read_text())["val_ece"] is None
    before = _tree(run)
    assert main(["evaluate", str(run), "--calibrate", "--data-dir", "sample"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("cifarlab: error: ") and "data.val_fraction" in line
    assert _tree(run) == before  # no evaluation/, no temperature.json, nothing touched


def test_calibrate_with_tta_is_refused_before_anything_is_written(tmp_path, calibrated, capsys):
    run = _copy(calibrated[0], tmp_path / "run")
    shutil.rmtree(run / "evaluation")
    (run / "temperature.json").unlink()
    before = _tree(run)
    assert main(["evaluate", str(run), "--calibrate", "--tta", "flip"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--calibrate" in line and "--tta flip" in line
    assert _tree(run) == before


def test_a_later_evaluation_keeps_reporting_the_stored_temperature(tmp_path, calibrated, capsys):
    """After --calibrate, a plain evaluate (as --corruptions runs one) reports the calibrated
    numbers with the stored T, so evaluation.json does not lose them; TTA does not apply it,
    and a stale T is named on stderr, not applied."""
    run = _copy(calibrated[0], tmp_path / "run")
    fitted = calibrated[1]
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    assert "after temperature scaling: ECE " in capsys.readouterr().out
    stored = json.loads((run / "evaluation" / "none" / "evaluation.json").read_text())
    assert stored["temperature"]["value"] == fitted["temperature"]["value"]
    assert stored["temperature"]["stored"] is True
    assert stored["calibrated"]["ece"] == pytest.approx(fitted["calibrated"]["ece"], abs=1e-9)
    assert stored["calibrated"]["nll"] == pytest.approx(fitted["calibrated"]["nll"], rel=1e-6)
    assert main(["evaluate", str(run), "--tta", "flip", "--device", "cpu"]) == 0
    flip = json.loads((run / "evaluation" / "flip" / "evaluation.json").read_text())
    assert "calibrated" not in flip and "temperature" not in flip
    capsys.readouterr()
    record = json.loads((run / "temperature.json").read_text())
    record["step"] -= 1
    (run / "temperature.json").write_text(json.dumps(record))
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "after temperature scaling" not in captured.out
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith("cifarlab: warning: ") and "temperature.json: ignored" in warning
