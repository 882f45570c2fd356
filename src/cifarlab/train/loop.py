"""The training loop: plain functions over an explicit ``TrainState``; the hot path.

``train`` runs a recipe into a run directory::

    plan = decide_start(...)              # fresh / resume / finished / extended (train.start)
    ctx, state = build(plan, call)        # device, data, model, optimizer (train.context)
    for each checkpoint point p:          # the eval points, plus every checkpoint_every steps
        train_segment(state, ctx, p)      # steps up to p, no host synchronisation
        end_segment(state, ctx)           # the one wait for the device: timers, non-finite check
        record(state, ctx) at eval points # running train + validation metrics (train.points)
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab import atomic, rundir
from cifarlab.data.augment import augment_batch, mix_batch, resize_batch, resolution_at
from cifarlab.data.batches import (
    alternating_flips,
    epoch_order,
    normalize,
    step_generator,
    to_float,
)
from cifarlab.errors import TrainingError
from cifarlab.models import count_parameters
from cifarlab.recipe import Recipe, parse_overrides
from cifarlab.runtime import autocast, precision_name
from cifarlab.train import distributed
from cifarlab.train.context import (
    QUICK_CHECK_IMAGES,
    QUICK_CHECK_POINTS,
    QUICK_CHECK_STEPS,
    RunContext,
    TrainCall,
    build,
)
from cifarlab.train.ema import update_ema
from cifarlab.train.optim import lr_at, set_lr
from cifarlab.train.points import finish, record, save
from cifarlab.train.start import FINISHED, StartPlan, decide_start, warn_schedule_change
from cifarlab.train.state import HISTORY_KEYS, TrainState

__all__ = ["HISTORY_KEYS", "train", "train_step", "train_segment"]


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

    ``recipe`` is a built-in name, a TOML path, a dict or a Recipe, resolved with ``overrides``
    and validated once; a Recipe in which ``overrides`` change nothing (resolved with them, as
    ``cifarlab train`` and a study's or search's job do) is trained as it is.

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
    # The inputs, normalised here and nowhere after: the recipe itself is resolved once, by
    # decide_start on rank 0 (a fresh run's from ``recipe``, a resumed run's from its checkpoint).
    run = rundir.RunDir(out_dir, error=TrainingError)
    overrides = _overrides(overrides)
    allow_change = tuple(allow_change)
    if quick_check and resume is not False:
        raise TrainingError("--quick-check: a quick check is a new run; drop --resume")
    with distributed.session() as world, contextlib.ExitStack() as held:
        # The recipe's system.threads holds while it trains; the caller gets its own back (a
        # notebook, a study's or search's in-process job, the next test).
        held.callback(torch.set_num_threads, torch.get_num_threads())

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
        quiet = not world.is_main  # only rank 0 prints and writes
        call = TrainCall(
            run=run,
            world=world,
            data=data,
            data_dir=data_dir,
            progress=False if quiet else progress,
            log=_silent if quiet else log,
            tensorboard=tensorboard and not quiet,
            on_eval=on_eval,
            quick_check=quick_check,
        )
        try:
            # Rank 0 reads the run directory and resolves the recipe; every rank gets the plan
            # (the Recipe object, and a resume's checkpoint) and trains it as it is.
            plan = world.decide(lambda: decide_start(recipe, run, overrides, resume, allow_change))
            return run_plan(plan, call)
        except RuntimeError as exc:
            if world.active and distributed.is_collective_failure(exc):
                raise distributed.collective_failure(exc, world, str(run.path)) from None
            raise


def _silent(line: str) -> None:
    """The log of a rank other than 0."""


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (the usual case), or already gone
        path.rmdir()


def _overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """``overrides`` as a dict of dotted field -> value (``["optim.lr=1e-3"]`` parsed)."""
    if not overrides:
        return {}
    return dict(overrides) if isinstance(overrides, dict) else parse_overrides(list(overrides))


def run_plan(plan: StartPlan, call: TrainCall) -> dict[str, Any]:
    """Train what ``plan`` says (in the locked run directory) and return the final metrics."""
    run, world, log = call.run, call.world, call.log
    if plan.kind == FINISHED:
        log(f"{run.path}: run already finished; nothing to do")
        return plan.metrics
    if plan.quick_check:  # a killed quick check is resumed as one
        call = dataclasses.replace(call, quick_check=True)
    if call.quick_check:  # the first line: nobody should take this run for a result
        log(
            f"quick check: {QUICK_CHECK_STEPS} training steps, {QUICK_CHECK_POINTS} evaluation "
            f"points and the test on at most {QUICK_CHECK_IMAGES} images each, checkpoints and "
            f"figures, into {run.path}: a smoke test of the recipe, not a result"
        )
    recipe, payload = plan.recipe, plan.payload
    if payload is not None:
        step = payload["step"]
        log(f"resuming {run.path} from {plan.checkpoint} at step {step}")
        for c in plan.changes:
            log(f"recipe change at step {step}: {c['field']} {c['from']!r} -> {c['to']!r}")
        if plan.changes and world.is_main:  # recorded in the checkpoint and metrics.json as well
            atomic.write_text(run.recipe_path, recipe.to_toml(), error=TrainingError)

    ctx, state = build(plan, call)
    if plan.changes and world.is_main:
        warn_schedule_change(plan, ctx.total, run.path)
    if payload is None and world.is_main:  # the resolved recipe, there from the first step on
        atomic.write_text(run.recipe_path, recipe.to_toml(), error=TrainingError)
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
            if call.on_eval is not None and point in ctx.eval_at:  # after the save: resumable
                call.on_eval(state.step, ctx.total, state.history)
        if ctx.total == 0 and payload is None:
            save(state, ctx)
    finally:
        if ctx.bar is not None:
            ctx.bar.close()
        if ctx.tb is not None:
            ctx.tb.close()
    return finish(state, ctx, call.started)
