"""Setting a run up: the device, the data, the model, the optimizer and the run's context.

``build`` turns a start plan (cifarlab.train.start) and what the caller gave ``train()``
(``TrainCall``) into the ``RunContext``, fixed while the run trains, and the ``TrainState``,
fresh or restored from the plan's checkpoint. Everything a new run's recipe cannot be checked
for before the data is loaded (its length on the split, the sizes the model takes) is
refused here, before the first step.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cifarlab import rundir
from cifarlab.data.batches import derive_seed, normalize, to_float
from cifarlab.data.tensors import TrainTensors, load_data_for
from cifarlab.errors import CheckpointError, DataError, RecipeError, TrainingError
from cifarlab.models import create_model
from cifarlab.recipe import Recipe, check_run_length, run_steps
from cifarlab.runtime import (
    autocast_dtype,
    check_sync_bn,
    memory_format,
    resolve_device,
)
from cifarlab.train import distributed
from cifarlab.train.ema import create_ema
from cifarlab.train.optim import build_optimizer
from cifarlab.train.start import StartPlan
from cifarlab.train.state import TrainState, set_rng_state, unwrap
from cifarlab.trained import run_tensors

# A quick check (``train(quick_check=True)``, ``cifarlab train --quick-check``): every phase of a
# run for a few steps: this many optimizer steps, evaluation points after half and all of them
# (and at step 0), a checkpoint at each, validation and the final test (with the recipe's TTA)
# on at most QUICK_CHECK_IMAGES images each, the history files, metrics.json and the figures.
QUICK_CHECK_STEPS = 4
QUICK_CHECK_POINTS = 2
QUICK_CHECK_IMAGES = 256


@dataclass(frozen=True)
class TrainCall:
    """What a call of ``train()`` was given besides the recipe: where it writes, the data,
    how it reports, and on which rank it runs (``world``). Set once at the entry."""

    run: rundir.RunDir
    world: distributed.World
    data: Any = None  # loaded data (load_cifar10), or None: read from data_dir
    data_dir: str | None = None
    progress: bool | None = None
    log: Callable[[str], None] = print
    tensorboard: bool = False
    on_eval: Callable[[int, int, dict[str, list[Any]]], None] | None = None
    quick_check: bool = False
    # When the call began (before the start is decided), for metrics.json's wall_time_s.
    started: float = dataclasses.field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class RunContext:
    """What stays fixed while a run trains: recipe, data, device, schedule, outputs."""

    recipe: Recipe
    data: TrainTensors
    run: rundir.RunDir
    device: torch.device
    amp_dtype: torch.dtype | None
    mem_format: torch.memory_format
    world: distributed.World
    per_epoch: int  # optimizer steps per epoch
    total: int  # optimizer steps in the run
    eval_at: frozenset[int]  # steps after which to record train/validation metrics
    log: Callable[[str], None]
    emit: Callable[[str], None]  # the progress lines (through the bar when there is one)
    bar: Any = None  # a tqdm bar, or None
    tb: Any = None  # a TensorBoard SummaryWriter, or None
    recipe_changes: tuple[dict[str, Any], ...] = ()  # allowed changes made at resumes
    quick_check: bool = False  # a few steps of every phase, not a result (QUICK_CHECK_STEPS)


def eval_steps_for(total: int, points: int) -> set[int]:
    """Steps after which to evaluate: every total // points steps, and the last (the report's rule)."""
    every = max(total // points, 1)
    return {s for s in range(every, total + 1, every)} | ({total} if total else set())


def build(plan: StartPlan, call: TrainCall) -> tuple[RunContext, TrainState]:
    """The run's context and its state: fresh, or restored from the plan's checkpoint."""
    recipe, payload, run, world = plan.recipe, plan.payload, call.run, call.world
    data, quick_check = call.data, call.quick_check
    device = world.place(resolve_device(recipe.system.device))
    check_sync_bn(recipe.system.sync_bn, device)  # before any data is read
    if recipe.system.threads:
        torch.set_num_threads(recipe.system.threads)
    elif world.size > 1 and device.type == "cpu":
        # N processes share the CPU: C // N threads each, not C each (oversubscription).
        torch.set_num_threads(distributed.threads_per_rank(world.local_size))
    mem_format = memory_format(recipe.system.channels_last)

    if data is None:
        run_data = payload.get("data") if payload else None
        data = load_data_for(
            recipe.data.source,
            call.data_dir,
            call.log,
            run_data=run_data,
            spec=recipe.data.dataset_spec(),
        )
    if data.dataset != recipe.data.dataset:  # data given by hand (train(data=...))
        raise DataError(
            f"data.dataset: the recipe says {recipe.data.dataset!r} and the data given is "
            f"{data.dataset!r} ({data.source}); set data.dataset to match"
        )
    tensors = run_tensors(recipe, data, device)
    recorded = (payload or {}).get("data", {}).get("fingerprint")
    if recorded not in (None, tensors.fingerprint):
        raise CheckpointError(
            f"{run.path}: the checkpoint was trained on other data "
            f"({payload['data'].get('source')}); point --data-dir at that data to resume"
        )
    if payload is None or plan.changes:  # a new run, or one this resume changes
        # a batch larger than the split, no step at all, or a run beyond train.max_steps
        check_run_length(recipe, len(tensors.train_y))
    per_epoch, total = run_steps(recipe, len(tensors.train_y))
    if payload is not None and total < payload["step"]:
        raise TrainingError(
            f"train.epochs: {recipe.train.epochs:g} epochs is {total:,} steps, and the run is "
            f"at step {payload['step']:,} already"
        )
    eval_points = recipe.train.eval_points
    if quick_check:
        total, eval_points = min(total, QUICK_CHECK_STEPS), QUICK_CHECK_POINTS
        n = QUICK_CHECK_IMAGES
        tensors = dataclasses.replace(
            tensors,
            val_x=tensors.val_x[:n],
            val_y=tensors.val_y[:n],
            test_x=tensors.test_x[:n],
            test_y=tensors.test_y[:n],
        )
    world.check_data(
        tensors.fingerprint, tensors.source, recipe.train.batch_size, len(tensors.train_y)
    )

    torch.manual_seed(recipe.seed)
    model = create_model(
        recipe.model.name, num_classes=len(tensors.classes), **recipe.model.options
    )
    model.to(device=device, memory_format=mem_format)
    if payload is None:
        # Data-dependent initialisation (e.g. fastnet's whitening layer), from training images only.
        with torch.no_grad():
            head = tensors.train_x[: min(len(tensors.train_x), 5000)]
            model.init_from_data(
                normalize(to_float(head), tensors.mean, tensors.std).contiguous(
                    memory_format=mem_format
                )
            )
    check_resolutions(
        model, recipe, tensors.train_x.shape[1], device, mem_format, tensors.train_x.shape[-1]
    )
    optimizer = build_optimizer(recipe.optim, model)
    state = TrainState(model=model, step_model=model, optimizer=optimizer, step=0)
    state.reset_running(device)
    state.bad_step = torch.zeros((), dtype=torch.int64, device=device)
    state.bad_loss = torch.zeros((), dtype=torch.float32, device=device)
    if payload is not None:
        unwrap(model).load_state_dict(payload.get("train_model", payload["model"]))
        optimizer.load_state_dict(payload["optimizer"])
        state.history = {k: list(v) for k, v in payload["history"].items()}
        state.step = int(payload["step"])
        state.train_time = float(payload.get("train_time_s", 0.0))
        # Rank 0 carries the job's running totals; the other ranks add theirs from zero.
        if world.is_main:
            state.set_running(payload["running"], device)
        set_rng_state(payload["rng"])  # rank 0's state: the one checkpoints keep
    model.after_step(state.step, total)  # a model's per-step state is a function of the step
    if recipe.train.ema:
        # Before wrapping (DDP, SyncBatchNorm, compile): the average is of the plain module.
        # A checkpoint with "train_model" holds the EMA in "model"; one without it (the run
        # turned EMA on at this resume) starts the average from the trained weights.
        state.ema = create_ema(model)
        if payload is not None and "train_model" in payload:
            state.ema.load_state_dict(payload["model"])
    if world.rank > 0:
        # Dropout masks must differ between ranks, yet be reproducible: seed from (seed, step, rank).
        torch.manual_seed(derive_seed(recipe.seed, state.step, stream=1000 + world.rank))
    state.step_model = world.wrap(model, device, recipe.system.sync_bn)
    if recipe.system.compile:
        state.step_model = torch.compile(state.step_model)

    bar = _progress_bar(total, state.step, call.progress)
    ctx = RunContext(
        recipe=recipe,
        data=tensors,
        run=run,
        device=device,
        amp_dtype=autocast_dtype(device, recipe.system.precision),
        mem_format=mem_format,
        world=world,
        per_epoch=per_epoch,
        total=total,
        eval_at=frozenset(eval_steps_for(total, eval_points)),
        log=call.log,
        emit=bar.write if bar is not None else call.log,
        bar=bar,
        tb=_tensorboard_writer(run.tensorboard_dir) if call.tensorboard else None,
        recipe_changes=plan.recorded,
        quick_check=quick_check,
    )
    return ctx, state


def check_resolutions(
    model, recipe: Recipe, channels: int, device, mem_format, native: int = 32
) -> None:
    """Refuse, before training, a train.resolutions size the model cannot take (seednet's
    fully connected head is built for 32x32), and the data's own size where it is not 32
    (a folder dataset's data.image_size): one forward pass of two blank images per size, in
    eval mode, so nothing about the model changes."""
    sizes = sorted(set(recipe.train.resolutions) | ({native} if native != 32 else set()))
    if not sizes:
        return
    was_training = model.training
    model.eval()
    try:
        for size in sizes:
            x = torch.zeros(2, channels, size, size, device=device)
            try:
                with torch.no_grad():
                    model(x.contiguous(memory_format=mem_format))
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if size == native and size not in recipe.train.resolutions:
                    raise RecipeError(
                        f"data.image_size: model {recipe.model.name} cannot take {size}x{size} "
                        f"images ({first}); set data.image_size = 32, or use a model that "
                        "takes any size (fastnet, the resnets)"
                    ) from None
                raise RecipeError(
                    f"train.resolutions: model {recipe.model.name} cannot take {size}x{size} "
                    f"images ({first}); use sizes it can, or leave train.resolutions empty"
                ) from None
    finally:
        model.train(was_training)


def _tensorboard_writer(log_dir: Path):
    """A SummaryWriter into ``log_dir``, the run's tensorboard/ (needs the `tensorboard`
    package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TrainingError(
            "--tensorboard needs the tensorboard package: pip install 'cifarlab[extras]'"
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


def _progress_bar(total: int, start: int, progress: bool | None):
    """A tqdm bar on a terminal; None (plain lines at evaluation points) otherwise."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=False)
