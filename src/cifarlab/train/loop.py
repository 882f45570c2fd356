"""The training loop: flat and visible (STYLE.md 4).

``train`` runs a recipe into a run directory: it resolves the recipe, loads and
splits the data, builds the model and optimizer, then steps through
``total_steps`` optimizer steps. The learning rate is a pure function of the
step, the epoch order and each step's augmentation are pure functions of
(seed, epoch/step), and dropout draws from torch's global RNG whose state is
checkpointed — so a resumed run replays exactly what an uninterrupted one does.
At each of ``eval_points`` evenly spaced steps it records the running train
loss/accuracy since the last point and the full validation loss/accuracy,
prints them like the seed report, and writes a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab.data.augment import augment_batch
from cifarlab.data.batches import (
    derive_seed,
    epoch_order,
    normalize,
    step_generator,
    to_float,
    to_uint8_tensor,
)
from cifarlab.errors import CheckpointError, TrainingError
from cifarlab.evaluate import evaluate_sums, finalize, predict_logits
from cifarlab.models import count_parameters, create_model
from cifarlab.runtime import autocast, autocast_dtype, memory_format, resolve_device
from cifarlab.train import distributed
from cifarlab.train.checkpoint import (
    latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
    write_json_atomic,
)
from cifarlab.train.optim import build_optimizer, lr_at, set_lr
from cifarlab.train.recipe import Recipe, load_recipe, recipe_from_dict
from cifarlab.train.rundir import RunLock, provenance, write_history_csv, write_text_atomic

HISTORY_KEYS = ("step", "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s")
METRICS = "metrics.json"


@dataclass
class Tensors:
    """The run's data, resident on the device as uint8 images and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    classes: list[str]
    source: str
    fingerprint: str


def prepare_tensors(recipe: Recipe, data, device: torch.device) -> Tensors:
    """Split the training set (stratified, seeded) and move everything to ``device`` once."""
    import hashlib

    import numpy as np

    from cifarlab.data import split_train_val

    train_idx, val_idx = split_train_val(
        data.train_labels, recipe.data.val_fraction, recipe.data.split_seed
    )
    digest = hashlib.sha1()
    for arr in (data.train_labels, data.test_labels, train_idx):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return Tensors(
        train_x=to_uint8_tensor(data.train_images[train_idx], device),
        train_y=torch.from_numpy(data.train_labels[train_idx]).to(device),
        val_x=to_uint8_tensor(data.train_images[val_idx], device),
        val_y=torch.from_numpy(data.train_labels[val_idx]).to(device),
        test_x=to_uint8_tensor(data.test_images, device),
        test_y=torch.from_numpy(data.test_labels).to(device),
        mean=torch.tensor(recipe.data.mean, device=device),
        std=torch.tensor(recipe.data.std, device=device),
        classes=list(data.classes),
        source=data.source,
        fingerprint=digest.hexdigest()[:16],
    )


def load_data_for(recipe: Recipe, data_dir: str | None, log: Callable[[str], None]):
    """The dataset a recipe asks for; ``auto`` falls back to the bundled sample, saying so."""
    from cifarlab.data import load_cifar10

    source = data_dir if data_dir is not None else recipe.data.source
    if source == "auto":
        data = load_cifar10(None, fallback_to_sample=True)
    else:
        data = load_cifar10(source)
    log(f"data: {data.source}")
    return data


def total_steps_for(recipe: Recipe, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total steps): partial last batches kept, as DataLoader's default."""
    per_epoch = max(math.ceil(n_train / recipe.train.batch_size), 1)
    return per_epoch, int(round(recipe.train.epochs * per_epoch))


def eval_steps_for(total: int, points: int) -> set[int]:
    """Steps after which to evaluate: every total // points steps, and the last (the report's rule)."""
    every = max(total // points, 1)
    return {s for s in range(every, total + 1, every)} | ({total} if total else set())


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
) -> dict[str, Any]:
    """Train ``recipe`` into ``out_dir`` and return its final metrics (also in metrics.json).

    ``resume``: False refuses a directory that already holds a run; True continues the
    run in ``out_dir`` from its last checkpoint (its own recipe); ``"auto"`` resumes
    when there is a checkpoint, returns the stored metrics when the run finished, and
    starts fresh otherwise (what studies use). ``tensorboard`` also writes TensorBoard event
    files (losses, accuracies, learning rate) into ``out_dir/tensorboard``.

    Under torchrun (``torchrun -m cifarlab train`` or ``cifarlab train --nproc N``) every
    rank calls this: it joins the process group, takes its share of each global batch, and
    only rank 0 locks and writes ``out_dir`` (see cifarlab.train.distributed).
    """
    out_dir = Path(out_dir)
    with distributed.session() as world, contextlib.ExitStack() as held:

        def lock() -> None:
            out_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(RunLock(out_dir))

        if not world.is_main:
            log, progress, tensorboard = (lambda s: None), False, False
        distributed.rank0_decides(lock, world)  # only rank 0 locks the directory it writes
        try:
            return _train_locked(
                recipe,
                out_dir,
                data,
                data_dir,
                overrides,
                resume,
                progress,
                log,
                tensorboard,
                world,
            )
        except RuntimeError as exc:
            if world.active and distributed.is_collective_failure(exc):
                raise distributed.collective_failure(exc, world, str(out_dir)) from None
            raise


def _decide_start(recipe, out_dir: Path, overrides, resume) -> tuple[str, Any]:
    """("finished", metrics) | ("resume", checkpoint payload) | ("fresh", recipe dict)."""
    found = latest_checkpoint(out_dir)
    finished = (out_dir / METRICS).is_file()
    if resume is False and (found or finished):
        raise TrainingError(
            f"{out_dir}: already holds a run; resume it with --resume {out_dir}, or choose another --out"
        )
    if resume is True and not found:
        raise TrainingError(f"{out_dir}: no checkpoint to resume (checkpoint.pt not found)")
    if found:
        ckpt_path, payload = found
        if finished and payload["step"] >= payload.get("total_steps", -1):
            return "finished", json.loads((out_dir / METRICS).read_text())
        return "resume", (ckpt_path.name, payload)
    return "fresh", load_recipe(recipe, overrides).to_dict()


def _train_locked(
    recipe, out_dir, data, data_dir, overrides, resume, progress, log, tensorboard, world
) -> dict[str, Any]:
    wall_start = time.perf_counter()
    # Rank 0 reads the run directory and hands the outcome (a checkpoint, too) to every rank.
    kind, found = distributed.rank0_decides(
        lambda: _decide_start(recipe, out_dir, overrides, resume), world
    )
    payload = None
    if kind == "finished":
        log(f"{out_dir}: run already finished; nothing to do")
        return found
    if kind == "resume":
        ckpt_name, payload = found
        recipe = recipe_from_dict(payload["recipe"])
        log(f"resuming {out_dir} from {ckpt_name} at step {payload['step']}")
    else:
        recipe = recipe_from_dict(found)
        if world.is_main:  # the resolved recipe is in the run directory from the first step on
            write_text_atomic(out_dir / "recipe.toml", recipe.to_toml())

    device = distributed.device_for(resolve_device(recipe.system.device), world)
    if recipe.system.threads:
        torch.set_num_threads(recipe.system.threads)
    elif world.size > 1 and device.type == "cpu":
        # N processes share the CPU: C // N threads each, not C each (oversubscription).
        torch.set_num_threads(distributed.threads_per_rank(world.local_size))
    amp_dtype = autocast_dtype(device, recipe.system.precision)
    mem_format = memory_format(recipe.system.channels_last)

    if data is None:
        data = load_data_for(recipe, data_dir, log)
    t = prepare_tensors(recipe, data, device)
    distributed.check_same(t.fingerprint, f"data ({t.source})", world)
    if payload is not None and payload.get("data", {}).get("fingerprint") not in (
        None,
        t.fingerprint,
    ):
        raise CheckpointError(
            f"{out_dir}: the checkpoint was trained on other data ({payload['data'].get('source')}); "
            f"point --data-dir at that data to resume"
        )

    torch.manual_seed(recipe.seed)
    model = create_model(recipe.model.name, num_classes=len(t.classes), **recipe.model.options)
    model.to(device=device, memory_format=mem_format)
    if payload is None and hasattr(model, "init_from_data"):
        # Data-dependent initialisation (e.g. fastnet's whitening layer), from training images only.
        with torch.no_grad():
            head = t.train_x[: min(len(t.train_x), 5000)]
            model.init_from_data(
                normalize(to_float(head), t.mean, t.std).contiguous(memory_format=mem_format)
            )
    optimizer = build_optimizer(recipe.optim, model)
    per_epoch, total = total_steps_for(recipe, len(t.train_y))
    eval_at = eval_steps_for(total, recipe.train.eval_points)
    batch = recipe.train.batch_size
    distributed.check_batch(batch, len(t.train_y), world)

    history: dict[str, list[Any]] = {k: [] for k in HISTORY_KEYS}
    running = {"loss_sum": 0.0, "correct": 0, "seen": 0}
    start, train_time = 0, 0.0
    if payload is not None:
        unwrap(model).load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        history = {k: list(v) for k, v in payload["history"].items()}
        # Rank 0 carries the job's running totals; the other ranks add theirs from zero.
        running = dict(payload["running"]) if world.is_main else running
        start, train_time = int(payload["step"]), float(payload.get("train_time_s", 0.0))
        set_rng_state(payload["rng"])  # rank 0's state: the one checkpoints keep
    if world.rank > 0:
        # Dropout masks must differ between ranks, yet be reproducible: seed from (seed, step, rank).
        torch.manual_seed(derive_seed(recipe.seed, start, stream=1000 + world.rank))
    ddp_model = distributed.wrap_model(model, device, world, recipe.system.sync_bn)
    train_model = torch.compile(ddp_model) if recipe.system.compile else ddp_model

    run = _Run(recipe, model, t, out_dir, device, amp_dtype, mem_format, world, log)

    def checkpoint(step: int) -> Path | None:
        # Collective first (every rank reaches every checkpoint step), then rank 0 writes.
        distributed.all_reduce_running(running, world)
        if not world.is_main:
            return None
        return save_checkpoint(
            out_dir,
            {
                "model": unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "total_steps": total,
                "rng": rng_state(),
                "history": history,
                "running": running,
                "recipe": recipe.to_dict(),
                "classes": t.classes,
                "normalization": {"mean": recipe.data.mean, "std": recipe.data.std},
                "data": {
                    "source": t.source,
                    "fingerprint": t.fingerprint,
                    "n_train": len(t.train_y),
                },
                "train_time_s": train_time,
            },
            {
                "recipe": recipe.name,
                "seed": recipe.seed,
                "step": step,
                "total_steps": total,
                "epoch": step / per_epoch,
                "val_acc": history["val_acc"][-1] if history["val_acc"] else None,
                "train_time_s": round(train_time, 3),
                "model": recipe.model.name,
                "world_size": world.size,
            },
        )

    def record(step: int, lr: float) -> None:
        distributed.all_reduce_running(running, world)  # rank 0 now holds the job's totals
        train_loss = running["loss_sum"] / running["seen"] if running["seen"] else None
        train_acc = running["correct"] / running["seen"] if running["seen"] else None
        val = run.evaluate(t.val_x, t.val_y) if len(t.val_y) else {"loss": None, "accuracy": None}
        for key, value in zip(
            HISTORY_KEYS,
            (
                step,
                step / per_epoch,
                lr,
                train_loss,
                train_acc,
                val["loss"],
                val["accuracy"],
                round(train_time, 3),
            ),
            strict=True,
        ):
            history[key].append(value)
        running.update(loss_sum=0.0, correct=0, seen=0)
        if tb is not None:
            for tag, value in (
                ("loss/train", train_loss),
                ("loss/val", val["loss"]),
                ("accuracy/train", train_acc),
                ("accuracy/val", val["accuracy"]),
                ("lr", lr),
            ):
                if value is not None:
                    tb.add_scalar(tag, value, step)
            tb.flush()
        done = step - start
        speed = done * batch / train_time_run if train_time_run > 0 and done else 0.0
        eta = (total - step) * batch / speed if speed else 0.0
        lines = [
            f"Epoch {math.ceil(step / per_epoch) if step else 0}/{math.ceil(total / per_epoch)}, "
            f"Step {step}/{total}" + (f" | {speed:,.0f} img/s | ETA {_hms(eta)}" if speed else "")
        ]
        if train_acc is not None:
            lines.append(f"Train -> accuracy: {train_acc * 100:.2f}, loss: {train_loss:.4f}")
        if val["accuracy"] is not None:
            lines.append(
                f"Validation -> accuracy: {val['accuracy'] * 100:.2f}, loss: {val['loss']:.4f}"
            )
        emit("\n".join(lines) + "\n")

    tb = _tensorboard_writer(out_dir) if tensorboard else None
    bar = _progress_bar(total, start, progress)
    emit = bar.write if bar is not None else log
    train_time_run = 0.0
    log(
        f"model: {recipe.model.name} ({count_parameters(model):,} parameters) | device: {device}"
        f" | precision: {amp_dtype or 'fp32'} | {total} steps of {batch} images ({per_epoch}/epoch)"
    )
    if start == 0 and not history["step"]:
        record(0, lr_at(0, total, recipe.optim.lr, recipe.schedule))

    train_model.train()
    order, order_epoch = None, -1
    for step in range(start, total):
        tick = time.perf_counter()
        epoch, i = divmod(step, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(t.train_y), recipe.seed, epoch).to(device), epoch
        idx = order[i * batch : (i + 1) * batch]
        # This rank's contiguous share of the global batch (all of it in a single process).
        lo, hi = distributed.rank_share(len(idx), world.rank, world.size)
        share = (hi - lo) * world.size / len(idx)  # 1.0 except in an uneven last batch
        idx = idx[lo:hi]
        lr = lr_at(step, total, recipe.optim.lr, recipe.schedule)
        set_lr(optimizer, lr)

        gen = step_generator(recipe.seed, step, rank=world.rank, device=device)
        x = augment_batch(to_float(t.train_x[idx]), recipe.augment, gen)
        x = normalize(x, t.mean, t.std).contiguous(memory_format=mem_format)
        y = t.train_y[idx]
        with autocast(device, amp_dtype):
            logits = train_model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.train.label_smoothing)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            last = latest_checkpoint(out_dir)
            where = (
                f"{last[0]} (step {last[1]['step']}) is kept"
                if last
                else "no checkpoint was written yet"
            )
            raise TrainingError(
                f"step {step + 1}: training loss is {loss_value} (non-finite); stopped. Last good "
                f"checkpoint {where}. Lower optim.lr or set train.grad_clip"
            )
        if share != 1.0:
            # DDP averages gradients over ranks; weighting each rank by its share of the
            # global batch makes that average the global batch's mean, as in one process.
            loss = loss * share
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.grad_clip)
        optimizer.step()
        if hasattr(model, "after_step"):  # e.g. fastnet freezes its whitening bias
            model.after_step(step + 1, total)

        running["loss_sum"] += loss_value * len(y)
        running["correct"] += int((logits.argmax(1) == y).sum())
        running["seen"] += len(y)
        elapsed = time.perf_counter() - tick
        train_time += elapsed
        train_time_run += elapsed
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(
                f"{batch * (step + 1 - start) / max(train_time_run, 1e-9):,.0f} img/s",
                refresh=False,
            )

        done = step + 1
        if done in eval_at:
            record(done, lr)
            checkpoint(done)
        elif recipe.train.checkpoint_every and done % recipe.train.checkpoint_every == 0:
            checkpoint(done)
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
    if start >= total and total == 0:
        checkpoint(0)

    return _finish(run, history, train_time, total, per_epoch, wall_start)


@dataclass(frozen=True)
class _Run:
    """A run's set-up as evaluation and the end of the run need it: recipe, model, data, device."""

    recipe: Recipe
    model: torch.nn.Module
    t: Tensors
    out_dir: Path
    device: torch.device
    amp_dtype: torch.dtype | None
    mem_format: torch.memory_format
    world: distributed.World
    log: Callable[[str], None]

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, tta: str = "none") -> dict[str, Any]:
        """Loss, accuracy, per-class accuracy and confusion on (x, y), sharded over the ranks."""
        sums = shard_sums(
            self.model,
            x,
            y,
            self.t,
            self.world,
            batch_size=self.recipe.eval.batch_size,
            amp_dtype=self.amp_dtype,
            memory_format=self.mem_format,
            tta=tta,
        )
        return finalize(sums, self.t.classes)


def _finish(
    run: _Run,
    history: dict[str, list[Any]],
    train_time: float,
    total: int,
    per_epoch: int,
    wall_start: float,
) -> dict[str, Any]:
    """Test accuracy (plain and with the recipe's TTA), metrics.json, history files, figures.

    Every rank evaluates its shard of the test set; only rank 0 writes."""
    from cifarlab.report.plots import plot_confusion, plot_curves

    recipe, model, t, world = run.recipe, run.model, run.t, run.world
    out_dir, log, device = run.out_dir, run.log, run.device
    test = run.evaluate(t.test_x, t.test_y)
    metrics: dict[str, Any] = {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "model": recipe.model.name,
        "parameters": count_parameters(model),
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_count": test["count"],
    }
    if recipe.eval.tta != "none":
        tta = run.evaluate(t.test_x, t.test_y, tta=recipe.eval.tta)
        metrics.update(tta=recipe.eval.tta, test_accuracy_tta=tta["accuracy"])
    metrics.update(
        val_accuracy=history["val_acc"][-1] if history["val_acc"] else None,
        steps=total,
        epochs=total / per_epoch,
        train_time_s=round(train_time, 3),
        images_per_s=round(total * recipe.train.batch_size / train_time, 1) if train_time else None,
        per_class_accuracy=test["per_class_accuracy"],
        confusion=test["confusion"],
        classes=t.classes,
        data={
            "source": t.source,
            "n_train": len(t.train_y),
            "n_val": len(t.val_y),
            "n_test": len(t.test_y),
        },
        provenance=provenance(device),
    )
    if world.active:
        metrics["provenance"]["world_size"] = world.size
    if not world.is_main:
        return metrics
    write_json_atomic(out_dir / "history.json", history)
    write_history_csv(out_dir / "history.csv", history)
    write_text_atomic(out_dir / "recipe.toml", recipe.to_toml())
    plot_curves(history, out_dir, title=recipe.name)
    plot_confusion(test["confusion"], t.classes, out_dir / "confusion.png")
    metrics["wall_time_s"] = round(time.perf_counter() - wall_start, 3)
    write_json_atomic(out_dir / METRICS, metrics)
    line = f"Test -> accuracy: {test['accuracy'] * 100:.2f}%"
    if "test_accuracy_tta" in metrics:
        line += f" ({metrics['tta']} TTA: {metrics['test_accuracy_tta'] * 100:.2f}%)"
    log(f"{line} | train time {_hms(train_time)} | run: {out_dir}")
    return metrics


def shard_sums(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    t: Tensors,
    world: distributed.World,
    **kwargs: Any,
) -> dict[str, torch.Tensor]:
    """evaluate_sums over all of (x, y): each rank predicts its contiguous shard and the
    additive sums are all-reduced, so every rank gets the same totals (one process: all of it).

    Sharding rather than every rank evaluating everything: N ranks evaluate N times faster,
    and rank 0's buffers are copied first so the shards see one and the same model.
    """
    distributed.sync_buffers(model, world)
    lo, hi = distributed.rank_share(len(y), world.rank, world.size)
    n_cls = len(t.classes)
    if hi > lo:
        logits = predict_logits(model, x[lo:hi], t.mean, t.std, **kwargs)
    else:  # more ranks than images: this rank adds zeros
        logits = torch.zeros(0, n_cls, device=y.device)
    return distributed.all_reduce_sums(evaluate_sums(logits, y[lo:hi], n_cls), world)


def _tensorboard_writer(out_dir: Path):
    """A SummaryWriter in out_dir/tensorboard (needs the `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TrainingError(
            "--tensorboard needs the tensorboard package: pip install 'cifarlab[extras]'"
        ) from None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


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
