"""Export a trained checkpoint for other runtimes: ONNX, TorchScript, safetensors.

Every export takes a float32 batch (N, 3, S, S) of RGB pixels scaled to [0, 1] (S: the
run's data.image_size, 32 for CIFAR-10 and CIFAR-100)
and then normalised as ``(x - mean) / std`` with the checkpoint's own mean and
std, and returns logits (N, classes). The class names and the normalisation
travel with the model in each format's own metadata (ONNX ``metadata_props``,
TorchScript ``_extra_files``, the safetensors header) and in a ``model.json``
sidecar beside it, so a consumer in another language needs nothing else.

When ``cifarlab evaluate --calibrate`` stored a temperature beside the checkpoint for its
step (temperature.json), the ONNX and TorchScript models return the logits divided by it
(their softmax is the calibrated probability; the argmax is unchanged) and the metadata's
``temperature`` says so; the safetensors file holds the network's own weights, so a consumer
divides by ``temperature`` (``load_safetensors_model`` does). A temperature fitted for
another step is ignored (``temperature`` null) and ``export_model``'s caller is told why.

    >>> from cifarlab.export import export_model
    >>> export_model("runs/seed-improved-seed0", "exported/", formats=["onnx"])
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_atomic, write_json
from cifarlab.errors import CifarlabError
from cifarlab.paths import output_dir

FORMATS = ("onnx", "torchscript", "safetensors")
FILENAMES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "safetensors": "model.safetensors",
}
SIDECAR = "model.json"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
ONNX_OPSET = 18


class ExportError(CifarlabError):
    """A model could not be exported (missing package, unwritable folder, ...)."""


def metadata(trained) -> dict[str, Any]:
    """What a consumer needs besides the weights: classes, normalisation, model, input spec."""
    from cifarlab.version import __version__

    side = trained.recipe.data.image_size  # 32 for CIFAR; a folder dataset's own
    return {
        "format": "cifarlab-export",
        "format_version": 1,
        "cifarlab": __version__,
        "classes": list(trained.classes),
        # the run's own normalisation as recorded (data.normalize = "train": the training
        # split's statistics, never recomputed)
        "mean": list(trained.mean),
        "std": list(trained.std),
        "dataset": (trained.run_data or {}).get("dataset", trained.recipe.data.dataset),
        "normalize": trained.recipe.data.normalize,
        "model": trained.model_name,
        "model_options": dict(trained.model_options),
        "input": {
            "name": INPUT_NAME,
            "shape": ["N", 3, side, side],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "preprocessing": "pixels / 255, then (x - mean) / std per channel",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["N", len(trained.classes)],
            "meaning": "logits"
            if trained.temperature is None
            else "logits divided by the temperature (softmax: calibrated probabilities); "
            "safetensors holds the network's weights: divide its logits by the temperature",
        },
        "temperature": trained.temperature,
        "checkpoint": str(trained.checkpoint),
        "step": trained.step,
    }


def _flat_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """Metadata as string -> string (ONNX and safetensors store only strings)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    formats: list[str] | tuple[str, ...] = ("onnx",),
    note: Callable[[str, bool], None] | None = None,
) -> dict[str, Path]:
    """Export ``checkpoint`` (file or run directory) into ``out_dir`` in each of ``formats``.

    Returns {format: path}; also writes (or updates) ``out_dir/model.json``. Files are
    written to a temporary name and renamed, so a failed export leaves no partial file.
    ``note(line, used)``, when given, is told which temperature is used (``used``), or why a
    stored one is not.
    """
    # Imported here, like torch below: `cifarlab export --help` reads FORMATS from this module
    # and must not load torch.
    from cifarlab.calibration import TemperatureScaled
    from cifarlab.trained import load_trained_model

    for fmt in formats:
        if fmt not in FORMATS:
            raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    trained = load_trained_model(checkpoint, device="cpu")
    if note is not None and trained.temperature_note:
        note(trained.temperature_note, trained.temperature is not None)
    out_dir = output_dir(out_dir, "export folder", create=True)
    meta = metadata(trained)
    graph = trained.model
    if trained.temperature is not None:
        graph = TemperatureScaled(trained.model, trained.temperature).eval()
    written: dict[str, Path] = {}
    for fmt in dict.fromkeys(formats):
        path = out_dir / FILENAMES[fmt]
        _EXPORTERS[fmt](trained.model if fmt == "safetensors" else graph, meta, path)
        written[fmt] = path
    _write_sidecar(out_dir, meta, written)
    return written


def _write_sidecar(out_dir: Path, meta: dict[str, Any], written: dict[str, Path]) -> None:

    files: dict[str, str] = {}
    old = out_dir / SIDECAR
    if old.is_file():
        try:
            previous = json.loads(old.read_text(encoding="utf-8"))
            same = all(previous.get(k) == meta[k] for k in ("checkpoint", "temperature"))
            if same:  # same model and temperature: keep its list
                files.update(
                    {
                        k: v
                        for k, v in previous.get("files", {}).items()
                        if (out_dir / str(v)).is_file()
                    }
                )
        except (OSError, ValueError, AttributeError):
            pass  # a sidecar we cannot read is replaced, never trusted
    files.update({fmt: path.name for fmt, path in written.items()})
    write_json(out_dir / SIDECAR, {**meta, "files": files}, error=ExportError)


def _example_input(meta: dict[str, Any] | None = None):
    """A batch of two blank images of the metadata's input side (32 when it names none)."""
    import torch

    side = int(((meta or {}).get("input") or {}).get("shape", [0, 0, 32, 32])[-1])
    return torch.zeros(2, 3, side, side)


def export_onnx(model, meta: dict[str, Any], path: Path) -> Path:
    """ONNX with a dynamic batch axis, through torch's torch.export-based exporter (dynamo)."""
    import contextlib
    import warnings

    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it; say so before tracing)
    except ImportError:
        raise ExportError(
            "ONNX export needs onnx and onnxscript: pip install 'cifarlab[extras]'"
        ) from None
    batch = torch.export.Dim("batch", min=1)
    try:
        # The exporter prints progress lines on stdout; keep `cifarlab export` quiet.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(),
                (_example_input(meta),),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                verbose=False,
            )
        proto = program.model_proto
        del proto.metadata_props[:]
        for key, value in _flat_metadata(meta).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        content = proto.SerializeToString()  # what onnx.save_model writes (< 2 GB)
    except ExportError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: ONNX export failed ({first[:200]})") from None
    return write_atomic(path, content, error=ExportError)


def export_torchscript(model, meta: dict[str, Any], path: Path) -> Path:
    """TorchScript by tracing; the metadata rides along as ``_extra_files['model.json']``."""
    import warnings

    import torch

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            traced = torch.jit.trace(model.eval(), _example_input(meta))
            torch.jit.save(traced, buffer, _extra_files={SIDECAR: json.dumps(meta)})
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: TorchScript export failed ({first[:200]})") from None
    return write_atomic(path, buffer.getvalue(), error=ExportError)


def export_safetensors(model, meta: dict[str, Any], path: Path) -> Path:
    """The state dict as safetensors; metadata (JSON strings) in the header."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise ExportError(
            "safetensors export needs safetensors: pip install 'cifarlab[extras]'"
        ) from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        content = save(tensors, metadata=_flat_metadata(meta))
    except Exception as exc:
        raise ExportError(f"{path}: safetensors export failed ({exc})") from None
    return write_atomic(path, content, error=ExportError)


_EXPORTERS = {
    "onnx": export_onnx,
    "torchscript": export_torchscript,
    "safetensors": export_safetensors,
}


# --------------------------------------------------------------------------- reading back


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The cifarlab metadata stored inside an exported file (any of the three formats)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        flat = {p.key: p.value for p in proto.metadata_props}
    elif path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            flat = dict(f.metadata() or {})
    else:
        import torch

        extra = {SIDECAR: ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[SIDECAR])
    return {k: _maybe_json(v) for k, v in flat.items()}


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def load_safetensors_model(path: str | Path):
    """Rebuild the model from a safetensors export alone: (model in eval mode, metadata); with
    a ``temperature`` in the metadata, the model divides its logits by it, as ONNX does."""
    from safetensors.torch import load_file

    # Imported here, like torch below: `cifarlab export --help` reads FORMATS from this module
    # and must not load torch.
    from cifarlab.calibration import TemperatureScaled
    from cifarlab.trained import build_model

    meta = read_metadata(path)
    model = build_model(
        meta["model"],
        meta.get("model_options", {}),
        len(meta["classes"]),
        load_file(str(path)),
        source=path,
    )
    if meta.get("temperature") is not None:
        model = TemperatureScaled(model, float(meta["temperature"]))
    return model.eval(), meta
