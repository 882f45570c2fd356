"""The report's model section: a table of each model's layers in call order (type, settings,
output shape, parameters, found by running it once on one image at the runs' resolution,
1×3×32×32 for CIFAR) and its forward cost, for every distinct model among the runs shown in detail and the ablations' first
steps."""

from __future__ import annotations

import json
from typing import Any

import torch

from cifarlab.models import count_flops, count_parameters, create_model
from cifarlab.report.document import Block, Heading, Paragraph, Section, Table
from cifarlab.report.formatting import number
from cifarlab.report.inputs import RunInput, StudyInput

MAX_MODEL_TABLES = 4


def model_label(key: tuple[str, str]) -> str:
    """The label "name (option=value, ...)" of a RunInput.model_key."""
    name, options = key
    opts = json.loads(options)
    return name + (" (" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")" if opts else "")


def layer_table(
    model_name: str, options: dict[str, Any], num_classes: int = 10, image_size: int = 32
) -> Table:
    """Each leaf layer in call order on a 1×3×S×S input (S = ``image_size``): type, settings,
    output shape, parameters."""
    model = create_model(model_name, num_classes=num_classes, **options).eval()
    calls: list[tuple[str, torch.nn.Module, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or isinstance(module, torch.nn.Identity):
            continue

        def hook(mod, _inp, out, name=name):
            tensor = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(tensor, torch.Tensor):
                calls.append((name, mod, tuple(tensor.shape[1:])))

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    rows = [["", "input", "", f"3×{image_size}×{image_size}", "0"]]
    counted: set[int] = set()
    for name, mod, shape in calls:
        params = 0
        if id(mod) not in counted:
            counted.add(id(mod))
            params = sum(p.numel() for p in mod.parameters(recurse=False))
        rows.append(
            [
                name,
                type(mod).__name__,
                mod.extra_repr(),
                "×".join(map(str, shape)) or "scalar",
                number(params),
            ]
        )
    total = count_parameters(model)
    listed = sum(
        p.numel() for m in {id(m): m for _, m, _ in calls}.values() for p in m.parameters(False)
    )
    if listed != total:
        rows.append(
            ["(other)", "parameters outside the listed layers", "", "", number(total - listed)]
        )
    rows.append(["", "total", "", "", number(total)])
    return Table(
        ["layer", "type", "settings", "output shape", "parameters"],
        rows,
        caption=f"{model_label((model_name, json.dumps(options, sort_keys=True)))}: "
        f"layers in call order, output shape per image",
        numeric=[False, False, False, True, True],
    )


def _classes_and_size(runs: list[RunInput]) -> tuple[int, int]:
    """The class count (metrics' ``classes``) and image side (the recipe's
    ``data.image_size``) of the first run that records them; CIFAR-10's 10 and 32 else."""
    classes = next(
        (len(r.metrics["classes"]) for r in runs if r.metrics and r.metrics.get("classes")), 10
    )
    sizes = (((r.recipe or {}).get("data") or {}).get("image_size") for r in runs)
    size = next((int(s) for s in sizes if isinstance(s, int) and s > 0), 32)
    return classes, size


def model_section(featured: list[RunInput], studies: list[StudyInput]) -> Section | None:
    """A layer table per distinct model (at most MAX_MODEL_TABLES); None without models."""
    keys: list[tuple[str, str]] = []
    candidates = list(featured)
    for study in studies:  # an ablation's first step is the model it started from
        steps = [s for s in study.step_names() if s in study.runs]
        if study.kind == "ablation" and steps:
            candidates.insert(0, study.runs[steps[0]][0])
    for run in candidates:
        key = run.model_key
        if key and key not in keys:
            keys.append(key)
    if not keys:
        return None
    blocks: list[Block] = []
    for key in keys[:MAX_MODEL_TABLES]:
        name, options = key[0], json.loads(key[1])
        classes, size = _classes_and_size([r for r in candidates if r.model_key == key])
        blocks.append(Heading(model_label(key), level=3))
        try:
            table = layer_table(name, options, classes, size)
            flops = count_flops(create_model(name, num_classes=classes, **options), size)
        except Exception as exc:  # a model we cannot build here: say so, keep the report going
            blocks.append(
                Paragraph(f"Layer table left out: {type(exc).__name__}: {exc}", note=True)
            )
            continue
        blocks.append(table)
        blocks.append(
            Paragraph(f"Forward cost: {flops / 1e6:,.1f} MFLOPs per {size}×{size} image.")
        )
    if len(keys) > MAX_MODEL_TABLES:
        blocks.append(
            Paragraph(
                f"{len(keys) - MAX_MODEL_TABLES} further model configurations not shown.", note=True
            )
        )
    return Section("model", "Model", blocks)
