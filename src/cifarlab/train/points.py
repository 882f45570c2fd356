"""Evaluation points and the end of a run: what the loop does between its segments.

At each evaluation point ``record`` evaluates the validation split (every rank its shard,
the sums all-reduced) and adds one history row; at each checkpoint point ``save`` writes an
atomic checkpoint (and checkpoint.best.pt under ``train.keep_best``); ``finish`` evaluates the
test split (with the recipe's TTA) and writes metrics.json, the history files and figures.
Only rank 0 prints and writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from cifarlab import atomic, rundir
from cifarlab.errors import TrainingError
from cifarlab.figures import plot_confusion, plot_curves
from cifarlab.inference import evaluate_sums, finalize, predict_logits_and_plain
from cifarlab.models import count_parameters
from cifarlab.runtime import precision_name, provenance
from cifarlab.train import distributed
from cifarlab.train.context import RunContext
from cifarlab.train.optim import lr_at
from cifarlab.train.state import HISTORY_KEYS, TrainState, rng_state, unwrap


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


def data_record(ctx: RunContext) -> dict[str, Any]:
    """What the checkpoint and metrics.json record of the data: the tensors' record (dataset
    name, source, fingerprint, counts) and the recipe's dataset settings (``dataset_spec``:
    what reloads the same dataset for evaluate, corruptions and the report)."""
    return {**ctx.data.data_record(), "dataset_spec": ctx.recipe.data.dataset_spec().record()}


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
            "normalization": ctx.data.normalization,
            "data": data_record(ctx),
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
    """Test accuracy (top-1 and top-5, plain and with the recipe's TTA), test and validation
    calibration, metrics.json, history files, figures.

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
        # The label among the top_k = min(5, classes) highest logits (cifarlab.inference).
        "test_top5_accuracy": test["top5_accuracy"],
        "top_k": test["top_k"],
        "test_loss": test["loss"],
        "test_count": test["count"],
        # Calibration (cifarlab.calibration): ECE with 15 bins, NLL, Brier, reliability bins.
        **{f"test_{k}": test[k] for k in ("ece", "nll", "brier", "reliability")},
        **{f"val_{k}": val.get(k) for k in ("ece", "nll", "brier")},
    }
    if recipe.eval.tta != "none":
        metrics.update(
            tta=recipe.eval.tta,
            test_accuracy_tta=test["tta"]["accuracy"],
            test_top5_accuracy_tta=test["tta"]["top5_accuracy"],
        )
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
        confused_pairs=test["confused_pairs"],  # the most frequent mistakes, from confusion
        classes=data.classes,
        normalization=data.normalization,
        data=data_record(ctx),
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
    line = (
        f"Test -> accuracy: {test['accuracy'] * 100:.2f}% "
        f"(top-{test['top_k']}: {test['top5_accuracy'] * 100:.2f}%)"
    )
    if "test_accuracy_tta" in metrics:
        line += f" ({metrics['tta']} TTA: {metrics['test_accuracy_tta'] * 100:.2f}%)"
    atomic.write_json(run.history_path, history, error=TrainingError)
    keys = list(history)
    rows = [list(r) for r in zip(*(history[k] for k in keys), strict=True)]
    atomic.write_csv(run.history_csv_path, keys, rows, error=TrainingError)
    atomic.write_text(run.recipe_path, recipe.to_toml(), error=TrainingError)
    changed = [  # where a resume changed the recipe, e.g. extended the run
        (c["at_step"], f"step {c['at_step']}: {c['field']} {c['from']!r} -> {c['to']!r}")
        for c in ctx.recipe_changes
    ]
    plot_curves(
        history,
        run.loss_figure_path,
        run.accuracy_figure_path,
        title=recipe.name + (" (quick check)" if ctx.quick_check else ""),
        marks=changed,
    )
    plot_confusion(
        test["confusion"], data.classes, run.confusion_figure_path, test["confused_pairs"]
    )
    metrics["wall_time_s"] = round(time.perf_counter() - wall_start, 3)
    atomic.write_json(run.metrics_path, metrics, error=TrainingError)  # last: "finished"
    ctx.log(f"{line} | train time {_hms(train_time)} | run: {run.path}")
    return metrics


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _epochs(passes: float) -> str:
    """Epochs as a short number: 2, 0.4, 0.24, 0.0063 (a run may be a fraction of one)."""
    if 0 < passes < 0.01:
        return f"{passes:.2g}"
    return f"{passes:.2f}".rstrip("0").rstrip(".")
