"""`cifarlab export`: ONNX against PyTorch in onnxruntime, TorchScript and safetensors
round trips, class names and normalisation stored alongside."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cifarlab.data.batches import normalize, to_float, to_uint8_tensor
from cifarlab.export import load_safetensors_model, read_metadata
from cifarlab.predict import load_trained_model


@pytest.fixture(scope="module")
def reference(export_run, sample_data):
    """PyTorch logits of the checkpoint on the bundled test images, and those inputs."""
    trained = load_trained_model(export_run)
    x = normalize(
        to_float(to_uint8_tensor(sample_data.test_images, torch.device("cpu"))),
        torch.tensor(trained.mean),
        torch.tensor(trained.std),
    )
    with torch.no_grad():
        logits = trained.model(x)
    return trained, x, logits


def test_files_and_sidecar(exported, sample_data):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["model.json", "model.onnx", "model.safetensors", "model.torchscript.pt"]
    side = json.loads((exported / "model.json").read_text())
    assert side["classes"] == list(sample_data.classes)
    assert side["mean"] == [0.5, 0.5, 0.5] and side["std"] == [0.5, 0.5, 0.5]
    assert side["model"] == "seednet-improved"
    assert side["files"] == {
        "onnx": "model.onnx",
        "torchscript": "model.torchscript.pt",
        "safetensors": "model.safetensors",
    }
    for name in ("model.onnx", "model.torchscript.pt", "model.safetensors"):
        meta = read_metadata(exported / name)
        assert meta["classes"] == side["classes"], name
        assert meta["mean"] == side["mean"] and meta["std"] == side["std"], name


def test_onnx_matches_pytorch_in_onnxruntime(exported, reference):
    ort = pytest.importorskip("onnxruntime")
    _, x, logits = reference
    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input" and inp.shape[1:] == [3, 32, 32]
    out = session.run(None, {"input": x.numpy()})[0]
    assert out.shape == (500, 10)
    assert np.abs(out - logits.numpy()).max() <= 1e-4
    assert np.array_equal(out.argmax(1), logits.argmax(1).numpy())
    # The batch axis is dynamic.
    assert session.run(None, {"input": x[:3].numpy()})[0].shape == (3, 10)


def test_torchscript_round_trip(exported, reference):
    _, x, logits = reference
    scripted = torch.jit.load(str(exported / "model.torchscript.pt"), map_location="cpu")
    with torch.no_grad():
        out = scripted(x)
    assert torch.equal(out.argmax(1), logits.argmax(1))
    assert torch.allclose(out, logits, atol=1e-5, rtol=0)


def test_safetensors_round_trip(exported, reference):
    _, x, logits = reference
    model, meta = load_safetensors_model(exported / "model.safetensors")
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out, logits)
    assert meta["model_options"] == {}


def test_export_errors_are_one_line(tmp_path, capsys):
    from cifarlab.cli.main import main  # in-process: the exported fixture ran the real CLI

    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cifarlab: error: ") and "checkpoint not found" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "export").exists()
