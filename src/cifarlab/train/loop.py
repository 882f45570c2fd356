"""The training loop: plain functions over an explicit ``TrainState`` (STYLE.md 4).

``train`` runs a recipe into a run directory::

    start (fresh / resume / finished / extended) -> build the context and the state
    for each checkpoint point p:          # the eval points, plus every checkpoint_every steps
        train_segment(state, ctx, p)      # steps up to p, no host synchronisation
        end_segment(state, ctx)           # the one wait for the device: timers, non-finite check
        record(state, ctx) at eval points # running train + validation metrics, printed
        save(state, ctx)                  # an atomic checkpoint
    finish(state, ctx)                    # test (and TTA) accuracy, metrics.json, figures

The learning rate is a pure function of the step, the epoch order and each step's
augmentation are pure functions of (seed, epoch/step), and dropout draws from torch's global
RNG, whose state is checkpointed, so a resumed run replays exactly what an uninterrupted one
does. The running train loss/accuracy and the first non-finite loss stay on the device and
are read only at checkpoint points; a checkpoint is never written after a non-finite loss.
Data-parallel runs differ only at the few calls on ``ctx.world`` (cifarlab.train.distributed).

A finished run extended (``--resume --allow-change train.epochs --set train.epochs=N``) is a
resume whose recipe is longer: every fraction-of-training setting (warm-up, milestones, cosine
or linear decay, resolution milestones, fastnet's whitening-bias freeze) is recomputed for the
new length, evaluation points follow the new length's spacing after the extension step, and
the history keeps the points recorded before it. Where nothing depends on the length (a
constant lr), the extended run's weights and optimizer state are bit for bit, on the CPU,
those of the run trained that long from the start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab import rundir
from cifarlab.data.augment import augment_batch, mix_batch, resize_batch, resolution_at
from cifarlab.data.batches import (
    alternating_flips,
    derive_seed,
    epoch_order,
    normalize,
    step_generator,
    to_float,
)
from cifarlab.data.tensors import TrainTensors, load_data_for
from cifarlab.errors import CheckpointError, CifarlabError, TrainingError, warn
from cifarlab.figures import plot_confusion, plot_curves
from cifarlab.inference import evaluate_sums, finalize, predict_logits_and_plain
from cifarlab.models import count_parameters, create_model
from cifarlab.recipe import (
    Recipe,
    RecipeError,
    check_run_length,
    load_recipe,
    recipe_from_dict,
    run_steps,
)
from cifarlab.runtime import (
    autocast,
    autocast_dtype,
    check_sync_bn,
    memory_format,
    precision_name,
    provenance,
    resolve_device,
)
from cifarlab.train import distributed
from cifarlab.train.ema import create_ema, update_ema
from cifarlab.train.optim import build_optimizer, lr_at, set_lr
from cifarlab.train.state import HISTORY_KEYS, TrainState, rng_state, set_rng_state, unwrap
from cifarlab.trained import run_tensors

__all__ = ["HISTORY_KEYS", "train", "train_step", "train_segment"]

# A quick check (``train(quick_check=True)``, ``cifarlab train --quick-check``): every phase of a
# run for a few steps: this many optimizer steps, evaluation points after half and all of them
# (and at step 0), a checkpoint at each, validation and the final test (with the recipe's TTA)
# on at most QUICK_CHECK_IMAGES images each, the history files, metrics.json and the figures.
QUICK_CHECK_STEPS = 4
QUICK_CHECK_POINTS = 2
QUICK_CHECK_IMAGES = 256


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


def checkpoint_points(ctx: RunContext, start: int) -> list[int]:
    """The steps after ``start`` at which a segment ends: eval points and checkpoint_every."""
    every = ctx.recipe.train.checkpoint_every
    extra = set(range(every, ctx.total + 1, every)) if every else set()
    return sorted(s for s in ctx.eval_at | extra if s > start)


# --------------------------------------------------------------------------- the step


def train_step(state: TrainState, ctx: RunContext) -> None:
    """One optimizer step; reads nothing back from the device.

    Under mixup / cutmix the loss is the cross-entropy with the batch's soft targets (label
    smoothing applied to them as well), while the running train accuracy counts the argmax
    against each image's own label (the larger part of a mixed image)."""
    recipe, data, step = ctx.recipe, ctx.data, state.step
    epoch, i = divmod(step, ctx.per_epoch)
    batch = recipe.train.batch_size
    idx, weight = ctx.world.share(epoch_indices(state, ctx, epoch)[i * batch : (i + 1) * batch])
    set_lr(state.optimizer, lr_at(step, ctx.total, recipe.optim.lr, recipe.schedule))

    gen = step_generator(recipe.seed, step, rank=ctx.world.rank, device=ctx.device)
    flips = batch_flips(recipe, idx, len(data.train_y), epoch)
    x = augment_batch(to_float(data.train_x[idx]), recipe.augment, gen, flips)
    y = data.train_y[idx]
    target = y  # class indices; (N, classes) probabilities under mixup / cutmix
    if recipe.augment.mixup or recipe.augment.cutmix:
        aug = recipe.augment
        x, target = mix_batch(x, y, len(data.classes), gen, aug.mixup, aug.cutmix)
    size = resolution_at(
        step / ctx.total, recipe.train.resolutions, recipe.train.resolution_milestones
    )
    x = resize_batch(normalize(x, data.mean, data.std), size).contiguous(
        memory_format=ctx.mem_format
    )
    with autocast(ctx.device, ctx.amp_dtype):
        logits = state.step_model(x)
    loss = F.cross_entropy(logits.float(), target, label_smoothing=recipe.train.label_smoothing)
    note_nonfinite(state, loss, step + 1)
    state.optimizer.zero_grad(set_to_none=True)
    (loss * weight if weight != 1.0 else loss).backward()
    if recipe.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), recipe.train.grad_clip)
    state.optimizer.step()
    state.model.after_step(step + 1, ctx.total)
    if state.ema is not None:
        update_ema(state.ema, state.model, recipe.train.ema, step + 1)

    n = len(y)
    state.loss_sum += loss.detach().double() * n
    state.correct += (logits.detach().argmax(1) == y).sum()
    state.seen += n
    state.step += 1


def note_nonfinite(state: TrainState, loss: torch.Tensor, step: int) -> None:
    """Remember the first step whose loss is not finite, on the device (no host read)."""
    first = ~torch.isfinite(loss.detach()) & (state.bad_step == 0)
    state.bad_step = torch.where(first, step, state.bad_step)
    state.bad_loss = torch.where(first, loss.detach().float(), state.bad_loss)


def batch_flips(recipe: Recipe, idx: torch.Tensor, n: int, epoch: int) -> torch.Tensor | None:
    """The images of a batch to mirror under ``augment.flip_alternate``; None otherwise."""
    if not recipe.augment.flip_alternate:
        return None
    return alternating_flips(idx, n, recipe.seed, epoch)


def epoch_indices(state: TrainState, ctx: RunContext, epoch: int) -> torch.Tensor:
    """Epoch ``epoch``'s shuffled order on the device, computed once per epoch."""
    if state.order_epoch != epoch:
        order = epoch_order(len(ctx.data.train_y), ctx.recipe.seed, epoch)
        if ctx.device.type == "cuda":  # pinned + non_blocking: the copy does not wait
            order = order.pin_memory()
        state.order, state.order_epoch = order.to(ctx.device, non_blocking=True), epoch
    return state.order


def train_segment(state: TrainState, ctx: RunContext, stop: int) -> None:
    """Steps until ``state.step == stop``: no evaluation, no checkpoint, no host read."""
    tick, first = time.perf_counter(), state.step
    while state.step < stop:
        train_step(state, ctx)
        if ctx.bar is not None:  # host-side numbers only
            done = state.session_steps + state.step - first
            elapsed = state.session_time + time.perf_counter() - tick
            ctx.bar.update(1)
            ctx.bar.set_postfix_str(
                f"{ctx.recipe.train.batch_size * done / max(elapsed, 1e-9):,.0f} img/s",
                refresh=False,
            )


def end_segment(state: TrainState, ctx: RunContext, tick: float, first: int) -> None:
    """After a segment begun at ``tick`` from step ``first``: wait for the device, count the
    segment's time, and stop on a non-finite loss (the segment's only host reads)."""
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)  # time the device's work, not the launch queue's
    elapsed = time.perf_counter() - tick
    state.train_time += elapsed
    state.session_time += elapsed
    state.session_steps += state.step - first
    bad_step, bad_loss = ctx.world.first_nonfinite(state.bad_step, state.bad_loss)
    if not bad_step:
        return
    last = ctx.world.decide(lambda: ctx.run.latest_checkpoint())
    where = (
        f"{last[0]} (step {last[1]['step']}) is kept" if last else "no checkpoint was written yet"
    )
    raise TrainingError(
        f"step {bad_step}: training loss is {bad_loss} (non-finite); stopped. Last good "
        f"checkpoint {where}. Lower optim.lr or set train.grad_clip"
    )


# --------------------------------------------------------------------------- points


def evaluate_split(
    ctx: RunContext, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, tta: str = "none"
) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion on (x, y): every rank predicts its
    contiguous shard (rank 0's buffers first) and the additive sums are all-reduced. With a
    ``tta`` mode these are the plain (identity view's) figures, and ``"tta"`` holds the same
    figures for the averaged views, from the same pass."""
    ctx.world.sync_buffers(model)
    lo, hi = distributed.rank_share(len(y), ctx.world.rank, ctx.world.size)
    n_cls = len(ctx.data.classes)
    if hi > lo:
        logits, plain = predict_logits_and_plain(
            model,
            x[lo:hi],
            ctx.data.mean,
            ctx.data.std,
            batch_size=ctx.recipe.eval.batch_size,
            amp_dtype=ctx.amp_dtype,
            memory_format=ctx.mem_format,
            tta=tta,
        )
        labels = y[lo:hi]
    else:  # more ranks than images: this rank adds zeros
        logits, labels = torch.zeros(0, n_cls, device=y.device), y[:0]
        plain = logits

    def figures(z: torch.Tensor) -> dict[str, Any]:
        return finalize(ctx.world.reduce_sums(evaluate_sums(z, labels, n_cls)), ctx.data.classes)

    out = figures(plain)
    if tta != "none":
        out["tta"] = figures(logits)
    return out


def record(state: TrainState, ctx: RunContext) -> None:
    """An evaluation point: running train metrics since the last one, validation metrics,
    one history row, the printed lines and TensorBoard scalars."""
    step, data = state.step, ctx.data
    window = step - (state.history["step"][-1] if state.history["step"] else 0)
    loss_sum, correct, seen = ctx.world.reduce_running(state.loss_sum, state.correct, state.seen)
    train_loss = float(loss_sum) / seen if seen else None
    train_acc = int(correct) / seen if seen else None
    val = (
        evaluate_split(ctx, state.eval_model, data.val_x, data.val_y)
        if len(data.val_y)
        else {"loss": None, "accuracy": None}
    )
    lr = lr_at(max(step - 1, 0), ctx.total, ctx.recipe.optim.lr, ctx.recipe.schedule)
    row = (step, step / ctx.per_epoch, lr, train_loss, train_acc, val["loss"], val["accuracy"])
    for key, value in zip(HISTORY_KEYS, (*row, round(state.train_time, 3)), strict=True):
        state.history[key].append(value)
    state.reset_running(ctx.device)
    state.last_val = {"step": step, **val}
    if ctx.tb is not None:
        for tag, value in (
            ("loss/train", train_loss),
            ("loss/val", val["loss"]),
            ("accuracy/train", train_acc),
            ("accuracy/val", val["accuracy"]),
            ("lr", lr),
        ):
            if value is not None:
                ctx.tb.add_scalar(tag, value, step)
        ctx.tb.flush()
    ctx.emit(progress_lines(state, ctx, train_loss, train_acc, val, window))


def progress_lines(state, ctx, train_loss, train_acc, val, window: int) -> str:
    """The seed report's printout of one evaluation point, with speed and ETA.

    The position is in steps, with the epoch as a number of passes (``epoch 0.24 of 0.24``:
    a run may be a fraction of an epoch long). The train figures are the running loss and
    accuracy over the ``window`` steps since the previous point, in training mode (dropout,
    augmentation, the weights moving), as history.json's train_loss / train_acc."""
    batch, step = ctx.recipe.train.batch_size, state.step
    speed = state.session_steps * batch / state.session_time if state.session_time else 0.0
    eta = (ctx.total - step) * batch / speed if speed else 0.0
    lines = [
        f"Step {step}/{ctx.total} (epoch {_epochs(step / ctx.per_epoch)} of "
        f"{_epochs(ctx.total / ctx.per_epoch)})"
        + (f" | {speed:,.0f} img/s | ETA {_hms(eta)}" if speed else "")
    ]
    if train_acc is not None:
        steps = f"last {window} step{'s' if window != 1 else ''}"
        lines.append(
            f"Train (running, {steps}) -> accuracy: {train_acc * 100:.2f}, loss: {train_loss:.4f}"
        )
    if val["accuracy"] is not None:
        lines.append(
            f"Validation -> accuracy: {val['accuracy'] * 100:.2f}, loss: {val['loss']:.4f}"
        )
    return "\n".join(lines) + "\n"


def save(state: TrainState, ctx: RunContext) -> Path | None:
    """A checkpoint of the state (rank 0 writes; every rank reduces its running sums first).

    Under ``train.keep_best``, an evaluation point whose validation accuracy beats every
    earlier one is also written as checkpoint.best.pt, first: a run killed between the two
    resumes from the previous checkpoint, replays the point and writes it again."""
    loss_sum, correct, seen = ctx.world.reduce_running(state.loss_sum, state.correct, state.seen)
    if not ctx.world.is_main:
        state.reset_running(ctx.device)
        return None
    state.loss_sum, state.correct, state.seen = loss_sum, correct, seen
    payload, summary = checkpoint_payload(state, ctx)
    if is_new_best(state, ctx):
        rundir.save_best_checkpoint(ctx.run.path, payload)
    return rundir.save_checkpoint(ctx.run.path, payload, summary)


def checkpoint_payload(state: TrainState, ctx: RunContext) -> tuple[dict, dict]:
    """(checkpoint, checkpoint.json summary) of the state as it is now."""
    recipe, history = ctx.recipe, state.history
    return (
        {
            # The weights the run is evaluated with: the EMA when train.ema > 0, and then the
            # optimizer's own in "train_model" (what a resume continues from; train/ema.py).
            "model": unwrap(state.eval_model).state_dict(),
            **({"train_model": unwrap(state.model).state_dict()} if state.ema is not None else {}),
            "optimizer": state.optimizer.state_dict(),
            "step": state.step,
            "total_steps": ctx.total,
            "rng": rng_state(),
            "history": history,
            "running": state.running(),
            "recipe": recipe.to_dict(),
            "classes": ctx.data.classes,
            "normalization": {"mean": recipe.data.mean, "std": recipe.data.std},
            "data": ctx.data.describe(),
            "train_time_s": state.train_time,
            "recipe_changes": list(ctx.recipe_changes),
            **({"quick_check": True} if ctx.quick_check else {}),
        },
        {
            "recipe": recipe.name,
            "seed": recipe.seed,
            "step": state.step,
            "total_steps": ctx.total,
            "epoch": state.step / ctx.per_epoch,
            "val_acc": history["val_acc"][-1] if history["val_acc"] else None,
            "train_time_s": round(state.train_time, 3),
            "model": recipe.model.name,
            "world_size": ctx.world.size,
            **({"quick_check": True} if ctx.quick_check else {}),
        },
    )


def best_point(history: dict[str, list[Any]], since: int = 0) -> int | None:
    """The index in ``history`` of the evaluation point after step ``since`` with the highest
    validation accuracy (the earliest of equals, as Lightning's ModelCheckpoint keeps); None
    when there is none. Step 0, the untrained model, is never a candidate."""
    best = None
    for i, (step, acc) in enumerate(zip(history["step"], history["val_acc"], strict=True)):
        if step > since and acc is not None and (best is None or acc > history["val_acc"][best]):
            best = i
    return best


def keep_best_since(ctx: RunContext) -> int:
    """The step after which checkpoint.best.pt's candidates lie: 0, or the step at which a
    resume turned ``train.keep_best`` on (earlier points have no weights to keep)."""
    turned_on = [
        c["at_step"]
        for c in ctx.recipe_changes
        if c.get("field") == "train.keep_best" and c.get("to") is True
    ]
    return max(turned_on, default=0)


def is_new_best(state: TrainState, ctx: RunContext) -> bool:
    """Whether this step's evaluation point is the best so far (``train.keep_best``)."""
    history = state.history
    if not ctx.recipe.train.keep_best or not history["step"] or history["step"][-1] != state.step:
        return False
    return best_point(history, keep_best_since(ctx)) == len(history["step"]) - 1


def finish(state: TrainState, ctx: RunContext, wall_start: float) -> dict[str, Any]:
    """Test accuracy (plain and with the recipe's TTA), test and validation calibration,
    metrics.json, history files, figures.

    Every rank evaluates its shard of the test set; only rank 0 writes."""
    recipe, data, history, run = ctx.recipe, ctx.data, state.history, ctx.run
    test = evaluate_split(ctx, state.eval_model, data.test_x, data.test_y, tta=recipe.eval.tta)
    val = state.last_val if state.last_val and state.last_val["step"] == state.step else {}
    if not val and len(data.val_y):  # the last point was recorded by an earlier process
        val = evaluate_split(ctx, state.eval_model, data.val_x, data.val_y)
    metrics: dict[str, Any] = {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "model": recipe.model.name,
        "parameters": count_parameters(state.model),
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_count": test["count"],
        # Calibration (cifarlab.calibration): ECE with 15 bins, NLL, Brier, reliability bins.
        **{f"test_{k}": test[k] for k in ("ece", "nll", "brier", "reliability")},
        **{f"val_{k}": val.get(k) for k in ("ece", "nll", "brier")},
    }
    if recipe.eval.tta != "none":
        metrics.update(tta=recipe.eval.tta, test_accuracy_tta=test["tta"]["accuracy"])
    train_time = state.train_time
    metrics.update(
        val_accuracy=history["val_acc"][-1] if history["val_acc"] else None,
        steps=ctx.total,
        epochs=ctx.total / ctx.per_epoch,
        train_time_s=round(train_time, 3),
        images_per_s=round(ctx.total * recipe.train.batch_size / train_time, 1)
        if train_time
        else None,
        per_class_accuracy=test["per_class_accuracy"],
        confusion=test["confusion"],
        classes=data.classes,
        data=data.describe(),
        provenance=provenance(ctx.device),
    )
    if ctx.recipe_changes:
        metrics["recipe_changes"] = list(ctx.recipe_changes)
    if recipe.train.keep_best:
        best = best_point(history, keep_best_since(ctx))
        metrics["best"] = (
            None
            if best is None
            else {
                "file": rundir.BEST,
                "step": history["step"][best],
                "epoch": history["epoch"][best],
                "val_accuracy": history["val_acc"][best],
            }
        )
    if ctx.quick_check:  # a smoke test: readers (report, studies) must not take it for a result
        metrics["quick_check"] = True
    metrics["provenance"]["precision"] = precision_name(ctx.amp_dtype)
    if ctx.world.active:
        metrics["provenance"]["world_size"] = ctx.world.size
    if not ctx.world.is_main:
        return metrics
    line = f"Test -> accuracy: {test['accuracy'] * 100:.2f}%"
    if "test_accuracy_tta" in metrics:
        line += f" ({metrics['tta']} TTA: {metrics['test_accuracy_tta'] * 100:.2f}%)"
    rundir.write_json(run / rundir.HISTORY_JSON, history, error=TrainingError)
    keys = list(history)
    rows = [list(r) for r in zip(*(history[k] for k in keys), strict=True)]
    rundir.write_csv(run / rundir.HISTORY_CSV, keys, rows, error=TrainingError)
    rundir.write_text(run / rundir.RECIPE, recipe.to_toml(), error=TrainingError)
    changed = [  # where a resume changed the recipe, e.g. extended the run
        (c["at_step"], f"step {c['at_step']}: {c['field']} {c['from']!r} -> {c['to']!r}")
        for c in ctx.recipe_changes
    ]
    plot_curves(
        history,
        run.path,
        title=recipe.name + (" (quick check)" if ctx.quick_check else ""),
        marks=changed,
    )
    plot_confusion(test["confusion"], data.classes, run / rundir.CONFUSION_FIGURE)
    metrics["wall_time_s"] = round(time.perf_counter() - wall_start, 3)
    rundir.write_json(run / rundir.METRICS, metrics, error=TrainingError)  # last: "finished"
    ctx.log(f"{line} | train time {_hms(train_time)} | run: {run.path}")
    return metrics


# --------------------------------------------------------------------------- the run


def train(
    recipe: str | Path | Recipe | dict = "seed-baseline",
    *,
    out_dir: str | Path,
    data=None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    resume: bool | str = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    tensorboard: bool = False,
    allow_change: tuple[str, ...] | list[str] = (),
    on_eval: Callable[[int, int, dict[str, list[Any]]], None] | None = None,
    quick_check: bool = False,
) -> dict[str, Any]:
    """Train ``recipe`` into ``out_dir`` and return its final metrics (also in metrics.json).

    ``resume``: False refuses a directory that already holds a run; True continues the
    run in ``out_dir`` from its last checkpoint (its own recipe, and its own data when it
    trained on the bundled sample); ``"auto"`` resumes when there is a checkpoint, returns
    the stored metrics when the run finished, and starts fresh otherwise (what studies use).
    ``tensorboard`` also writes TensorBoard event files into ``out_dir/tensorboard``.

    A resumed run keeps the recipe its checkpoint holds: ``overrides`` that change it are
    refused unless every changed field is named in ``allow_change`` (e.g. ``train.epochs``
    to train longer); allowed changes are recorded in the checkpoint and metrics.json
    (``recipe_changes``). A ``recipe.toml`` edited by hand since is refused, never overwritten.
    A finished run is trained on the same way: a longer ``train.epochs``, allowed, continues
    it from its last checkpoint to the new length, the schedule recomputed for it.

    ``quick_check`` runs every phase for a few steps (QUICK_CHECK_STEPS; validation and test
    on at most QUICK_CHECK_IMAGES images) into a new ``out_dir``, marked as a quick check in
    its checkpoints and metrics.json (``"quick_check": true``): a smoke test, not a result.

    ``on_eval(step, total_steps, history)`` is called after each evaluation point past step 0,
    once that point's checkpoint is written (a search reports the validation accuracy to its
    pruner here). It may raise to stop the run: the run is then left as a killed run would
    be, with its lock released and a valid checkpoint of that point to resume from.

    Under torchrun (``torchrun -m cifarlab train`` or ``cifarlab train --nproc N``) every
    rank calls this: it joins the process group, takes its share of each global batch, and
    only rank 0 locks and writes ``out_dir`` (see cifarlab.train.distributed).
    """
    run = rundir.RunDir(out_dir, error=TrainingError)
    if quick_check and resume is not False:
        raise TrainingError("--quick-check: a quick check is a new run; drop --resume")
    with distributed.session() as world, contextlib.ExitStack() as held:
        if not world.is_main:
            log, progress, tensorboard = (lambda s: None), False, False

        def lock() -> None:
            if resume is True and not run.has_checkpoint():  # a failed resume creates nothing
                raise TrainingError(
                    f"{run.path}: no checkpoint to resume (checkpoint.pt not found)"
                )
            if not run.path.exists():
                # Runs after the lock is released (LIFO): a refused run (bad data, a batch
                # larger than the split) leaves no empty folder of ours behind.
                held.callback(_remove_if_empty, run.path)
            run.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(rundir.RunLock(run.path))

        world.decide(lock)  # only rank 0 locks the directory it writes
        try:
            return _train_locked(
                recipe,
                run,
                data,
                data_dir,
                overrides,
                resume,
                progress,
                log,
                tensorboard,
                world,
                tuple(allow_change),
                on_eval,
                quick_check,
            )
        except RuntimeError as exc:
            if world.active and distributed.is_collective_failure(exc):
                raise distributed.collective_failure(exc, world, str(run.path)) from None
            raise


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (the usual case), or already gone
        path.rmdir()


def decide_start(recipe, run: rundir.RunDir, overrides, resume, allow_change=()) -> tuple[str, Any]:
    """("finished", metrics) | ("resume", (name, payload, changes)) | ("fresh", recipe dict)."""
    found = run.latest_checkpoint()
    finished = run.is_finished()
    if resume is False and (found or finished):
        raise TrainingError(
            f"{run.path}: already holds a run; resume it with --resume {run.path}, or choose "
            f"another --out"
        )
    if resume is True and not found:
        raise TrainingError(f"{run.path}: no checkpoint to resume (checkpoint.pt not found)")
    if found:
        ckpt_path, payload = found
        done = finished and payload["step"] >= payload.get("total_steps", -1)
        if not done:
            check_recipe_file(run, payload["recipe"])
        changes = recipe_changes(payload["recipe"], overrides, allow_change, run.path)
        if done:
            if not changes:
                return "finished", run.metrics()
            check_recipe_file(run, payload["recipe"])  # trained on to a longer end: extended
        if changes:
            check_new_length(run, payload, load_recipe(payload["recipe"], overrides), done)
        return "resume", (ckpt_path.name, payload, changes)
    return "fresh", load_recipe(recipe, overrides).to_dict()


def check_new_length(
    run: rundir.RunDir, payload: dict[str, Any], recipe: Recipe, done: bool
) -> None:
    """A resume that changes the recipe must not end before the checkpoint's step: a finished
    run is trained on only to a longer ``train.epochs`` (a change that leaves nothing to train
    is refused, not ignored), and an unfinished one is shortened at most to where it is. A
    quick check is never trained on."""
    step, total = payload["step"], payload.get("total_steps")
    if payload.get("quick_check"):
        raise TrainingError(
            f"{run.path}: a quick check (--quick-check) is not trained on; start a real run "
            f"with --recipe {run.path / rundir.RECIPE}"
        )
    n_train = payload.get("data", {}).get("n_train")
    if not isinstance(n_train, int) or n_train < 1:
        return  # an old checkpoint: build() checks against the loaded split
    per_epoch, new_total = run_steps(recipe, n_train)
    if new_total > step or (new_total == step and not done):  # the latter: finish it there
        return
    now = f"{recipe.train.epochs:g} epochs is {new_total:,} steps"
    if done:
        raise TrainingError(
            f"{run.path}: the run finished at step {step:,} of {total:,}; --resume trains it on "
            f"only to a longer train.epochs ({now}): --set train.epochs=N "
            f"--allow-change train.epochs with N above {step / per_epoch:g}"
        )
    raise TrainingError(
        f"train.epochs: {now}, and the run is at step {step:,} already; to shorten it, give "
        f"train.epochs of at least {step / per_epoch:g}"
    )


def check_recipe_file(run: rundir.RunDir, stored: dict[str, Any]) -> None:
    """A run's recipe.toml must still say what its checkpoint trains; a hand edit is refused
    (resuming would ignore it, and the end of the run would overwrite it)."""
    on_disk = run.recipe()
    if on_disk is None:
        return
    try:
        edited = recipe_from_dict(on_disk, stored=True).to_dict()
    except CifarlabError as exc:
        raise TrainingError(f"{run / rundir.RECIPE}: edited and no longer valid ({exc})") from None
    diff = _differences(recipe_from_dict(stored, stored=True).to_dict(), edited)
    if diff:
        field, old, new = diff[0]
        raise TrainingError(
            f"{run / rundir.RECIPE}: edited since the run started ({field}: {old!r} -> {new!r}); "
            f"the checkpoint trains the original. Restore the file, or resume with "
            f"--set {field}=... --allow-change {field}"
        )


def recipe_changes(
    stored: dict[str, Any], overrides, allow_change: tuple[str, ...], where: Path
) -> list[dict[str, Any]]:
    """The fields ``overrides`` change in a resumed run's recipe, all of them allowed."""
    if not overrides:
        return []
    before = recipe_from_dict(stored, stored=True).to_dict()
    after = load_recipe(before, overrides).to_dict()  # load_recipe copies before it overrides
    diff = _differences(before, after)
    refused = [field for field, _, _ in diff if field not in allow_change]
    if refused:
        raise TrainingError(
            f"{where}: --resume continues the run with its own recipe; it would change "
            f"{', '.join(refused)}. To change a field on purpose: --allow-change {refused[0]} "
            f"(recorded in the run), or start a new run"
        )
    return [{"field": f, "from": a, "to": b} for f, a, b in diff]


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple]:
    """(dotted field, value in a, value in b) for every leaf that differs."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "options":
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out


def _train_locked(
    recipe,
    run,
    data,
    data_dir,
    overrides,
    resume,
    progress,
    log,
    tensorboard,
    world,
    allow_change,
    on_eval=None,
    quick_check=False,
) -> dict[str, Any]:
    wall_start = time.perf_counter()
    # Rank 0 reads the run directory and hands the outcome (a checkpoint, too) to every rank.
    kind, found = world.decide(lambda: decide_start(recipe, run, overrides, resume, allow_change))
    payload, stored = None, None
    if kind == "finished":
        log(f"{run.path}: run already finished; nothing to do")
        return found
    quick_check = quick_check or bool(payload_of(kind, found).get("quick_check"))
    if quick_check:  # the first line: nobody should take this run for a result
        log(
            f"quick check: {QUICK_CHECK_STEPS} training steps, {QUICK_CHECK_POINTS} evaluation "
            f"points and the test on at most {QUICK_CHECK_IMAGES} images each, checkpoints and "
            f"figures, into {run.path}: a smoke test of the recipe, not a result"
        )
    if kind == "resume":
        ckpt_name, payload, changes = found
        log(f"resuming {run.path} from {ckpt_name} at step {payload['step']}")
        if changes:
            stored = recipe_from_dict(payload["recipe"], stored=True)
            recipe = load_recipe(stored.to_dict(), overrides)
            payload["recipe_changes"] = [
                *payload.get("recipe_changes", []),
                *({"at_step": payload["step"], **c} for c in changes),
            ]
            for c in changes:
                log(
                    f"recipe change at step {payload['step']}: {c['field']} {c['from']!r} -> {c['to']!r}"
                )
            if world.is_main:  # recorded in the checkpoint and metrics.json as well
                rundir.write_text(run / rundir.RECIPE, recipe.to_toml(), error=TrainingError)
        else:
            recipe = recipe_from_dict(payload["recipe"], stored=True)
    else:
        recipe = recipe_from_dict(found)

    ctx, state = build(
        recipe, run, data, data_dir, payload, progress, log, tensorboard, world, quick_check
    )
    if stored is not None and world.is_main:
        warn_schedule_change(stored, ctx, payload)
    if payload is None and world.is_main:  # the resolved recipe, there from the first step on
        rundir.write_text(run / rundir.RECIPE, recipe.to_toml(), error=TrainingError)
    try:
        log(
            f"model: {recipe.model.name} ({count_parameters(state.model):,} parameters) | "
            f"device: {ctx.device} | precision: {precision_name(ctx.amp_dtype)} | "
            f"{ctx.total} steps of {recipe.train.batch_size} images ({ctx.per_epoch}/epoch)"
        )
        if state.step == 0 and not state.history["step"]:
            record(state, ctx)
        state.step_model.train()
        for point in checkpoint_points(ctx, state.step):
            tick, first = time.perf_counter(), state.step
            train_segment(state, ctx, point)
            end_segment(state, ctx, tick, first)
            if point in ctx.eval_at:
                record(state, ctx)
            save(state, ctx)
            if on_eval is not None and point in ctx.eval_at:  # after the save: resumable
                on_eval(state.step, ctx.total, state.history)
        if ctx.total == 0 and payload is None:
            save(state, ctx)
    finally:
        if ctx.bar is not None:
            ctx.bar.close()
        if ctx.tb is not None:
            ctx.tb.close()
    return finish(state, ctx, wall_start)


def payload_of(kind: str, found: Any) -> dict[str, Any]:
    """The checkpoint a resume starts from ({} for a fresh run)."""
    return found[1] if kind == "resume" else {}


def warn_schedule_change(stored: Recipe, ctx: RunContext, payload: dict[str, Any]) -> None:
    """A resume that changed the run's length recomputes every fraction-of-training setting
    for the new length (train/optim.lr_at): say so when that moves the learning rate."""
    step, before_total = payload["step"], payload.get("total_steps")
    if not step or not isinstance(before_total, int) or before_total == ctx.total:
        return
    before = lr_at(step - 1, before_total, stored.optim.lr, stored.schedule)
    after = lr_at(step, ctx.total, ctx.recipe.optim.lr, ctx.recipe.schedule)
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=0.0):
        return
    warn(
        f"{ctx.run.path}: the {ctx.recipe.schedule.name} schedule is recomputed for "
        f"{ctx.total:,} steps instead of {before_total:,}: the learning rate goes from "
        f"{before:.4g} (step {step:,}) to {after:.4g} (step {step + 1:,}) and follows the "
        f"longer schedule from there"
    )


def build(
    recipe: Recipe,
    run,
    data,
    data_dir,
    payload,
    progress,
    log,
    tensorboard,
    world,
    quick_check: bool = False,
) -> tuple[RunContext, TrainState]:
    """The run's context and its state: fresh, or restored from a checkpoint ``payload``."""
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
        data = load_data_for(recipe.data.source, data_dir, log, run_data=run_data)
    tensors = run_tensors(recipe, data, device)
    recorded = (payload or {}).get("data", {}).get("fingerprint")
    if recorded not in (None, tensors.fingerprint):
        raise CheckpointError(
            f"{run.path}: the checkpoint was trained on other data "
            f"({payload['data'].get('source')}); point --data-dir at that data to resume"
        )
    changed = payload is not None and (
        recipe.to_dict() != recipe_from_dict(payload["recipe"], stored=True).to_dict()
    )
    if payload is None or changed:  # a new run, or one this resume changes
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
    check_resolutions(model, recipe, tensors.train_x.shape[1], device, mem_format)
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

    bar = _progress_bar(total, state.step, progress)
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
        log=log,
        emit=bar.write if bar is not None else log,
        bar=bar,
        tb=_tensorboard_writer(run.path) if tensorboard else None,
        recipe_changes=tuple((payload or {}).get("recipe_changes", [])),
        quick_check=quick_check,
    )
    return ctx, state


def check_resolutions(model, recipe: Recipe, channels: int, device, mem_format) -> None:
    """Refuse, before training, a train.resolutions size the model cannot take (seednet's
    fully connected head is built for 32x32): one forward pass of two blank images per size,
    in eval mode, so nothing about the model changes."""
    sizes = sorted(set(recipe.train.resolutions))
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
                raise RecipeError(
                    f"train.resolutions: model {recipe.model.name} cannot take {size}x{size} "
                    f"images ({first}); use sizes it can, or leave train.resolutions empty"
                ) from None
    finally:
        model.train(was_training)


def _tensorboard_writer(out_dir: Path):
    """A SummaryWriter in out_dir/tensorboard (needs the `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TrainingError(
            "--tensorboard needs the tensorboard package: pip install 'cifarlab[extras]'"
        ) from None
    return SummaryWriter(log_dir=str(out_dir / rundir.TENSORBOARD_DIR))


def _progress_bar(total: int, start: int, progress: bool | None):
    """A tqdm bar on a terminal; None (plain lines at evaluation points) otherwise."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=False)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _epochs(passes: float) -> str:
    """Epochs as a short number: 2, 0.4, 0.24, 0.0063 (a run may be a fraction of one)."""
    if 0 < passes < 0.01:
        return f"{passes:.2g}"
    return f"{passes:.2f}".rstrip("0").rstrip(".")
