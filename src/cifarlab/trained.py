"""The trained-model reader: a checkpoint (a file or a run directory) turned into its model on
a device, in eval mode, with what it needs to preprocess its input and name its outputs.

evaluate, corruption evaluation (cifarlab.robustness), predict and export all read a
checkpoint here, so every bad one ends the same way: a CheckpointError whose one line names
the file, which the CLI prints as ``cifarlab: error: ...`` with exit status 2. What is
refused, in the order it is checked:

- what cifarlab.rundir.load_checkpoint refuses: a missing, empty, truncated, damaged or
  foreign file, objects other than tensors and plain data, a newer checkpoint format, a
  payload without its model, recipe or step;
- a stored recipe that no longer loads, or a model that no longer builds from it;
- class names or a normalisation of the wrong kind;
- weights that do not fit the model the recipe builds (other layers, other shapes, another
  class count);
- with a data set (:func:`evaluation_data`), data with another class count than the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cifarlab.calibration import stored_temperature
from cifarlab.data.readers import NUM_CLASSES, LabelledImages
from cifarlab.data.tensors import TrainTensors, load_data_for, prepare_tensors
from cifarlab.errors import CheckpointError, CifarlabError
from cifarlab.inference import predict_logits
from cifarlab.models import create_model
from cifarlab.recipe import Recipe, recipe_from_dict
from cifarlab.rundir import RunDir, load_checkpoint
from cifarlab.runtime import resolve_device


@dataclass
class TrainedModel:
    """A checkpoint's model in eval mode with what it needs to preprocess and name its outputs."""

    model: torch.nn.Module
    classes: list[str]  # the checkpoint's class names; "class 0", ... where it has none
    mean: list[float]
    std: list[float]
    model_name: str
    model_options: dict[str, Any]
    recipe: Recipe  # the run's resolved recipe, as stored in the checkpoint
    checkpoint: str
    step: int
    run_data: dict[str, Any] | None = None  # what training recorded about its data, or None
    named_classes: bool = True  # False: the checkpoint named no classes (see ``classes``)
    device: torch.device | None = None
    temperature: float | None = None  # divides the logits (cifarlab.calibration), or None
    temperature_note: str | None = None  # one line: the temperature used, or why one was not
    temperature_record: dict[str, Any] | None = None  # the temperature.json record used

    def normalization(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and std as float32 tensors on the model's device."""
        return (
            torch.tensor(self.mean, device=self.device),
            torch.tensor(self.std, device=self.device),
        )

    def logits(self, images: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Logits (N, classes) for uint8 images (N, 3, H, W), without the temperature
        (cifarlab.inference.predict_logits: ``tta``, ``batch_size``, ...)."""
        mean, std = self.normalization()
        return predict_logits(self.model, images, mean, std, **kwargs)


def checkpoint_file(checkpoint: str | Path) -> Path:
    """The checkpoint file ``checkpoint`` names: a run directory means its checkpoint.pt."""
    path = Path(checkpoint)
    return RunDir(path).checkpoint_path if path.is_dir() else path


def load_trained_model(
    checkpoint: str | Path, device: str = "cpu", *, calibrated: bool = True
) -> TrainedModel:
    """Load a checkpoint (file or run directory) safely and rebuild its model in eval mode on
    ``device``; every bad checkpoint raises CheckpointError in one line (module docstring).

    ``calibrated``: take the temperature ``cifarlab evaluate --calibrate`` stored beside the
    checkpoint for its step (temperature.json); one fitted for another step is not taken,
    and ``temperature_note`` says which of the two happened.
    """
    payload = load_checkpoint(checkpoint)
    path = checkpoint_file(checkpoint)
    try:
        recipe = recipe_from_dict(
            payload["recipe"], stored=True, version=payload.get("format_version")
        )
    except CifarlabError as exc:
        raise CheckpointError(f"{path}: its recipe does not load ({exc})") from None
    recorded = payload.get("classes")
    classes = _class_names(path, recorded)
    mean, std = _normalization(path, payload.get("normalization"), recipe)
    run_data = payload.get("data")
    if run_data is not None and not isinstance(run_data, dict):
        raise CheckpointError(f"{path}: 'data' is a {type(run_data).__name__}, not a record")
    model = build_model(
        recipe.model.name, recipe.model.options, len(classes), payload["model"], source=path
    )
    dev = resolve_device(device)
    model.to(dev).eval()
    step = int(payload["step"])
    record, note = stored_temperature(checkpoint, step) if calibrated else (None, None)
    return TrainedModel(
        model=model,
        classes=classes,
        mean=mean,
        std=std,
        model_name=recipe.model.name,
        model_options=dict(recipe.model.options),
        recipe=recipe,
        checkpoint=str(checkpoint),
        step=step,
        run_data=run_data,
        named_classes=bool(recorded),
        device=dev,
        temperature=None if record is None else float(record["temperature"]),
        temperature_note=note,
        temperature_record=record,
    )


def build_model(
    name: str,
    options: Mapping[str, Any],
    num_classes: int,
    weights: Mapping[str, torch.Tensor],
    *,
    source: str | Path,
) -> torch.nn.Module:
    """The registered model ``name`` with ``num_classes`` outputs and ``weights`` loaded (a
    checkpoint's, or an export's: ``source`` names the file in the one line of a
    CheckpointError when the model does not build or the weights do not fit it)."""
    try:
        model = create_model(name, num_classes=num_classes, **options)
    except CifarlabError as exc:
        raise CheckpointError(f"{source}: its model does not build ({exc})") from None
    misfit = _misfit(model.state_dict(), weights)
    if misfit is None:
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:  # what the comparison does not see (a dtype, ...)
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            misfit = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:160]
    if misfit is not None:
        raise CheckpointError(
            f"{source}: the weights do not fit model {name!r} with {num_classes} classes ({misfit})"
        )
    return model


def _misfit(own: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> str | None:
    """Why ``weights`` do not fit a model whose state dict is ``own``, in a few words; None
    when every name and shape matches."""
    shapes = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        more = f"; {len(shapes) - 1} more differ" if len(shapes) > 1 else ""
        return f"{k} is {_shape(weights[k])} in the file, {_shape(own[k])} in the model{more}"
    missing = [k for k in own if k not in weights]
    if missing:
        return f"the file lacks {len(missing)} of the model's weights: {_names(missing)}"
    unknown = [k for k in weights if k not in own]
    if unknown:
        return f"the file has {len(unknown)} weights the model does not: {_names(unknown)}"
    return None


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(str(n) for n in tensor.shape) or "a scalar"


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _class_names(path: Path, recorded: Any) -> list[str]:
    """The checkpoint's class names, or ``class 0``, ... for CIFAR-10 where it names none."""
    if not recorded:
        return [f"class {i}" for i in range(NUM_CLASSES)]
    if not isinstance(recorded, list | tuple) or not all(isinstance(c, str) for c in recorded):
        raise CheckpointError(f"{path}: 'classes' is not a list of class names; not loadable")
    return list(recorded)


def _normalization(path: Path, norm: Any, recipe: Recipe) -> tuple[list[float], list[float]]:
    """The checkpoint's normalisation (its recipe's data.mean and data.std where it has none)."""
    if norm is None:
        norm = {"mean": recipe.data.mean, "std": recipe.data.std}
    try:
        mean, std = ([float(v) for v in norm[key]] for key in ("mean", "std"))
    except (KeyError, TypeError, ValueError):
        mean = std = []
    if len(mean) != 3 or len(std) != 3:
        raise CheckpointError(
            f"{path}: 'normalization' is not a mean and a std of 3 channels; not loadable"
        )
    return mean, std


def evaluation_data(
    trained: TrainedModel, *, data: LabelledImages | None = None, data_dir: str | None = None
) -> tuple[LabelledImages, list[str]]:
    """The data set ``trained`` is evaluated on, and its class names: ``data``, else
    ``data_dir``, else what the run recorded (a run trained on the bundled sample is reopened
    on it, without searching or touching the network), else the recipe's rule (``auto``
    falls back to the sample). Data with another class count than the model is refused."""
    if data is None:
        data = load_data_for(
            trained.recipe.data.source,
            data_dir,
            log=lambda line: None,
            run_data=trained.run_data,
            spec=trained.recipe.data.dataset_spec(),
        )
    if len(data.classes) != len(trained.classes):
        raise CheckpointError(
            f"{checkpoint_file(trained.checkpoint)}: the model tells {len(trained.classes)} "
            f"classes apart and the data ({data.source}) has {len(data.classes)}"
        )
    return data, (trained.classes if trained.named_classes else list(data.classes))


def run_tensors(recipe: Recipe, data: LabelledImages, device: torch.device) -> TrainTensors:
    """``data`` as the run with ``recipe`` holds it: its split (data.val_fraction,
    data.split_seed), its normalisation, resident on ``device``."""
    return prepare_tensors(
        data,
        val_fraction=recipe.data.val_fraction,
        split_seed=recipe.data.split_seed,
        mean=recipe.data.mean,
        std=recipe.data.std,
        device=device,
        normalize=recipe.data.normalize,
    )
